"""Fit the extractive composer's score weights on the dev splits; report gold-fact % on test.

Uses the collections scripts/fit_fusion.py builds (perlfaq + Zaragoza answers; the demo corpus
for the kx40 table/code set) and the same seeded dev/test split. For every question the top
sources are retrieved once (the engine's default fused ranking); each weight setting on a small
grid then composes an answer from them (unit vectors cached by text, so a setting costs no
re-encoding). The answer counts when it contains the gold: the first answer sentence for
perlfaq/Zaragoza, the fact for the table set. The setting with the best mean dev rate over the
sets is printed with its test rates; paste it into ``ComposerWeights`` defaults.

    PYTHONPATH=src .venv/bin/python scripts/fit_composer.py [--seed 16]
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import replace

import numpy as np
from fit_fusion import CACHE, ROOT, _bench, split

from edgerag.generation.extractive import NOT_FOUND, ComposerWeights, ExtractiveGenerator


class CachedEncoder:
    """Unit vectors by text: weight settings re-score the same units without re-encoding."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self.memo: dict[str, np.ndarray] = {}

    def encode(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if missing:
            for text, vec in zip(missing, self.encoder.encode(missing), strict=True):
                self.memo[text] = np.asarray(vec, dtype=np.float32)
        return np.stack([self.memo[t] for t in texts])


def gather(bench, seed: int, pool: int) -> dict[str, dict[str, list]]:
    """(question, gold, check, hits, query vector) per question, by set and split."""
    from edgerag import Engine

    qa = bench.load_perlfaq() + bench.load_zaragoza()
    out: dict[str, dict[str, list]] = {}
    plans = [
        ("fit-faq", "perlfaq", [q for q in qa if q.set == "perlfaq"], bench.contains_gold),
        ("fit-faq", "zaragoza", [q for q in qa if q.set == "zaragoza"], bench.contains_gold),
        ("fit-demo", "kx40-tables", bench.load_table_set(), bench.contains_fact),
    ]
    encoders = {}
    for db, name, items, check in plans:
        if not (CACHE / db / "store.db").exists():
            raise SystemExit(f"{CACHE / db}: run scripts/fit_fusion.py first")
        engine = Engine.open(CACHE / db)
        encoders[db] = CachedEncoder(engine.encoder)
        dev, test = split(items, seed)
        for part, subset in (("dev", dev), ("test", test)):
            rows = []
            for q in subset:
                hits = engine.search(q.question, k=pool).hits
                qvec = encoders[db].encode([q.question])[0]
                rows.append((q.question, q.gold, check, hits, qvec, encoders[db]))
            out.setdefault(name, {})[part] = rows
        engine.close()
    return out


def rate(rows: list, generator: ExtractiveGenerator) -> tuple[float, float]:
    """(gold rate, not-found rate)."""
    ok = refused = 0
    for question, gold, check, hits, qvec, encoder in rows:
        answer = generator.compose(question, hits, encoder, qvec)
        ok += check(answer, gold)
        refused += answer == NOT_FOUND
    return ok / len(rows), refused / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--pool", type=int, default=10, help="sources the composer reads")
    args = parser.parse_args()
    t0 = time.perf_counter()
    data = gather(_bench(), args.seed, args.pool)
    print(f"gathered in {time.perf_counter() - t0:.0f}s", flush=True)
    base = ComposerWeights()
    grid = itertools.product((0.2, 0.35, 0.5), (0.15, 0.25, 0.4), (0.1, 0.3), (0.1, 0.2), (1, 2, 3))
    results = []
    for cos, cov, typed, pos, units in grid:
        weights = replace(base, cosine=cos, coverage=cov, answer_type=typed, position=pos)
        gen = ExtractiveGenerator(weights=weights, max_units=units)
        dev = {name: rate(parts["dev"], gen)[0] for name, parts in data.items()}
        results.append((sum(dev.values()) / len(dev), weights, units, dev))
    results.sort(key=lambda r: -r[0])
    print("best dev settings (mean gold rate over sets):")
    for mean, weights, units, dev in results[:5]:
        print(f"  {mean:.3f} units={units} {weights} {dev}")
    _, weights, units, _ = results[0]
    default = ExtractiveGenerator()
    chosen = ExtractiveGenerator(weights=weights, max_units=units)
    print("\n| set (test split) | questions | gold, defaults | gold, fitted | not found, fitted |")
    print("|---|---:|---:|---:|---:|")
    for name, parts in data.items():
        before = rate(parts["test"], default)[0]
        after, refused = rate(parts["test"], chosen)
        print(f"| {name} | {len(parts['test'])} | {before:.3f} | {after:.3f} | {refused:.3f} |")
    print(f"\n{time.perf_counter() - t0:.0f}s; repo {ROOT}")


if __name__ == "__main__":
    main()
