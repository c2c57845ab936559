"""The answer composer's own cost per question (ms, p50/p95), hand-set vs shipped weights.

Reads the sources scripts/fit_composer.py gathered (the real ask path's pool of 10 hits per
question, with its query vector), so only the composer is timed: unit splitting, lexical and
entity scoring, and — when the cosine weight is not zero — encoding the best units with MiniLM.
Each question is composed twice: cold (its units not memoised yet) and warm (the same chunks
again, as popular chunks come back query after query).

    PYTHONPATH=src .venv/bin/python benchmarks/composer_cost.py [--n 200]
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from fit_fusion import CACHE  # noqa: E402

from edgerag.generation import units as units_module  # noqa: E402
from edgerag.generation.extractive import ComposerWeights, ExtractiveGenerator  # noqa: E402


def timed(generator: ExtractiveGenerator, rows: list[dict], encoder) -> tuple[list, list]:
    cold, warm = [], []
    for row in rows:
        for out in (cold, warm):
            t0 = time.perf_counter()
            generator.compose(row["question"], row["hits"], encoder, row["qvec"], 5)
            out.append((time.perf_counter() - t0) * 1000)
    return cold, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="questions (every n-th of all sets)")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    rows = pickle.loads((CACHE / f"composer-sources-{args.seed}.pkl").read_bytes())
    rows = rows[:: max(1, len(rows) // args.n)][: args.n]
    from edgerag import Engine

    with Engine.open(CACHE / "fit-faq") as engine:
        encoder = engine.encoder
        encoder.encode(["warm-up"])
        print("| composer | questions | cold p50 ms | cold p95 ms | warm p50 ms | warm p95 ms |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, weights in (
            ("hand-set (unit vectors)", ComposerWeights()),
            ("fitted, shipped", ComposerWeights.fitted()),
        ):
            units_module._units_of.cache_clear()
            cold, warm = timed(ExtractiveGenerator(weights=weights), rows, encoder)
            cells = [np.percentile(x, q) for x in (cold, warm) for q in (50, 95)]
            print(f"| {label} | {len(rows)} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
