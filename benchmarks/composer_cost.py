"""The answer composer's own cost per question (ms, p50/p95), hand-set vs shipped weights.

Reads the sources scripts/fit_composer.py gathered (the real ask path's pool of 10 hits per
question, with its query vector), so only the composer is timed: unit splitting, lexical and
entity scoring, and — when the cosine weight is not zero — encoding the best units with MiniLM.
Each question is composed twice: cold (its units not memoised yet) and warm (the same chunks
again, as popular chunks come back query after query).

``--stored``: also time the composer reading unit vectors stored at ingest (late chunking,
int8) through a real SQLite store, one query per question for all its sources; the vectors
are the ones ``fit_composer.py --units late`` cached, written into a temporary store.

    PYTHONPATH=src .venv/bin/python benchmarks/composer_cost.py [--n 200]
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from fit_fusion import CACHE  # noqa: E402

from edgerag.generation import units as units_module  # noqa: E402
from edgerag.generation.extractive import ComposerWeights, ExtractiveGenerator  # noqa: E402


def timed(
    generator: ExtractiveGenerator, rows: list[dict], encoder, stored=None
) -> tuple[list, list]:
    cold, warm = [], []
    for row in rows:
        for out in (cold, warm):
            t0 = time.perf_counter()
            generator.compose(row["question"], row["hits"], encoder, row["qvec"], 5, stored)
            out.append((time.perf_counter() - t0) * 1000)
    return cold, warm


def stored_units(rows: list[dict], seed: int):
    """A temporary store holding the late-chunked unit vectors of every source in ``rows``."""
    from edgerag.generation.unit_vectors import quantize
    from edgerag.store.ops import UnitVectors
    from edgerag.store.sqlite import Store

    memo = pickle.loads((CACHE / f"composer-late-units-{seed}.pkl").read_bytes())
    store = Store(Path(tempfile.mkdtemp()) / "store.db")
    wanted = {h.key for row in rows for h in row["hits"]}
    flat = [(kp, cv) for key in wanted for kp, cv in memo.get(key, {}).items()]
    codes, scales = quantize(np.stack([v for _, (_, v) in flat]))
    store.put_units(
        UnitVectors(
            "minilm-l6-int8",
            "1",
            keys=np.array([k for (k, _), _ in flat], dtype=np.int64),
            positions=np.array([p for (_, p), _ in flat], dtype=np.int32),
            checks=np.array([c for _, (c, _) in flat], dtype=np.uint32),
            scales=scales,
            codes=codes,
        )
    )
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="questions (every n-th of all sets)")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--stored", action="store_true", help="also time stored unit vectors")
    args = parser.parse_args()
    rows = pickle.loads((CACHE / f"composer-sources-{args.seed}.pkl").read_bytes())
    rows = rows[:: max(1, len(rows) // args.n)][: args.n]
    from edgerag import Engine

    with Engine.open(CACHE / "fit-faq") as engine:
        encoder = engine.encoder
        encoder.encode(["warm-up"])
        print("| composer | questions | cold p50 ms | cold p95 ms | warm p50 ms | warm p95 ms |")
        print("|---|---:|---:|---:|---:|---:|")
        runs = [
            ("hand-set, units encoded", ComposerWeights(), None),
            ("shipped, units encoded", ComposerWeights.fitted(), None),
        ]
        if args.stored:
            store = stored_units(rows, args.seed)
            enc = engine.encoder
            lookup = partial(store.unit_vectors, encoder=enc.id, version=enc.version)
            runs.append(("shipped, stored unit vectors (SQLite)", ComposerWeights.fitted(), lookup))
        for label, weights, lookup in runs:
            units_module._units_of.cache_clear()
            cold, warm = timed(ExtractiveGenerator(weights=weights), rows, encoder, lookup)
            cells = [np.percentile(x, q) for x in (cold, warm) for q in (50, 95)]
            print(f"| {label} | {len(rows)} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
