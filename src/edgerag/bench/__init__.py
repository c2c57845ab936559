"""Benchmarks a user can run on their own machine: ``edgerag bench`` and ``edgerag plan``.

* :mod:`edgerag.bench.runner`: the whole query path (ANN + rescoring + payload hydration)
  under concurrent load, per stage, with recall against the exact scan.
* :mod:`edgerag.bench.plan`: hardware dimensioning and a cost model calibrated by a short run.
* :mod:`edgerag.bench.plot`: PNG of latency vs concurrency and recall vs latency.
"""

from __future__ import annotations

from edgerag.bench.runner import BenchOptions, bench_db, bench_synthetic
from edgerag.bench.stats import Latency, Verdict, recall_at_k, verdict

__all__ = [
    "BenchOptions",
    "Latency",
    "Verdict",
    "bench_db",
    "bench_synthetic",
    "recall_at_k",
    "verdict",
]
