"""Ingest cost of answer-unit vectors: chunks/s with unit vectors off, late-chunked, separate.

The demo's text corpus (demo/corpus: a PDF manual, a Markdown guide, an HTML bulletin, a shift
log) is ingested into a fresh collection per mode, the modes interleaved round by round so the
ratios to "off" are taken under the same load. MiniLM, default settings otherwise.

    PYTHONPATH=src .venv/bin/python benchmarks/unit_vectors_ingest.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from edgerag import Engine, EngineConfig

CORPUS = Path(__file__).resolve().parents[1] / "demo" / "corpus"
MODES = ("off", "late", "separate")


def ingest_once(mode: str) -> tuple[int, float, int]:
    """(chunks, seconds, unit vectors stored) of one fresh ingest of the corpus."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        Engine.open(Path(tmp) / "c", EngineConfig(unit_vectors=mode)) as engine,
    ):
        t0 = time.perf_counter()
        report = engine.ingest([CORPUS])
        took = time.perf_counter() - t0
        units = engine.store._reader.execute("SELECT COUNT(*) FROM unit_vectors").fetchone()[0]
        return report.items, took, int(units)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ingest_once("off")  # warm-up: model load, page cache
    rates: dict[str, list[float]] = {m: [] for m in MODES}
    ratios: dict[str, list[float]] = {m: [] for m in MODES}
    units: dict[str, int] = {}
    for _ in range(args.rounds):
        per_round = {}
        for mode in MODES:
            chunks, took, units[mode] = ingest_once(mode)
            per_round[mode] = chunks / took
            rates[mode].append(per_round[mode])
        for mode in MODES:
            ratios[mode].append(per_round[mode] / per_round["off"])
    print(f"load average {os.getloadavg()[0]:.1f} (1 min) at the end; {args.rounds} rounds")
    print("| unit vectors | units stored | chunks/s (median) | vs off (median of rounds) |")
    print("|---|---:|---:|---:|")
    for mode in MODES:
        print(
            f"| {mode} | {units[mode]} | {statistics.median(rates[mode]):.1f} "
            f"| {statistics.median(ratios[mode]):.2f} |"
        )


if __name__ == "__main__":
    main()
