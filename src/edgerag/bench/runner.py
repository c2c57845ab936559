"""The load generator behind ``edgerag bench``: the whole query path under concurrent load.

What one query does (what a user of the library gets for a vector query): ``SpaceIndex.search``
(ANN over the quantized codes, then rescoring of the oversampled candidates against the f32
originals, or an exact scan when a filter is selective) and hydration of the top-k payload rows
from the SQLite store (``Retriever._hydrate``: text, provenance, metadata → ``Hit`` objects).

Stages, timed per query on the worker thread that ran it:

* ``ann``: time inside the ANN engine's ``search`` (faiss / usearch / flat), captured by a thin
  proxy around the engine so the measured path is the unmodified ``SpaceIndex.search``;
* ``rescore``: the rest of ``SpaceIndex.search`` (rescoring / filter plan / key mapping);
* ``hydrate``: payload rows from SQLite into ``Hit`` objects;
* ``e2e``: all three, wall clock.

Each concurrency level is a closed loop: ``c`` worker threads each take the next query as soon
as their previous one returned; QPS is queries / wall time of the level. Latencies are measured
inside the worker, so they include waiting for the GIL and for a core, which is what a caller
sees on a busy box.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgerag.bench.memory import index_memory
from edgerag.bench.stats import Latency, recall_at_k, rss_bytes, verdict
from edgerag.bench.synthetic import (
    StoredSpaceEncoder,
    build_synthetic,
    clustered,
    open_synthetic,
    perturb,
)
from edgerag.engine import Engine
from edgerag.errors import ConfigError, NotFoundError
from edgerag.index.base import QUANTIZATIONS, IndexConfig
from edgerag.index.space import MANIFEST, SpaceIndex
from edgerag.store.sqlite import Store
from edgerag.types import Vectors

logger = logging.getLogger(__name__)

STAGES = ("e2e", "ann", "rescore", "hydrate")


@dataclass(frozen=True)
class BenchOptions:
    """How to load the collection.

    Attributes:
        queries: timed queries per concurrency level (the brief: 1,000).
        k: results per query, hydrated with payload (the brief: top-5).
        concurrency: closed-loop worker counts to run.
        gate_concurrency: the level the PASS/FAIL line judges (the brief: 10); always run.
        p95_budget_ms: the P95 budget of the gate (the brief: 50 ms).
        warmup: untimed queries per level (opens each thread's SQLite reader, warms caches).
        recall_k: recall@k against the exact scan.
        ef_sweep: HNSW beam widths for the recall-vs-latency curve (empty: none).
        seed: query sampling seed.
        noise: query perturbation (std of the Gaussian added, relative to a unit vector).
    """

    queries: int = 1000
    k: int = 5
    concurrency: tuple[int, ...] = (1, 10, 32)
    gate_concurrency: int = 10
    p95_budget_ms: float = 50.0
    warmup: int = 50
    recall_k: int = 10
    ef_sweep: tuple[int, ...] = (32, 64, 128, 256)
    seed: int = 7
    noise: float = 0.3

    def __post_init__(self) -> None:
        if self.queries < 1:
            raise ConfigError("--queries must be >= 1")
        if not 1 <= self.k <= 1000:
            raise ConfigError("-k must be between 1 and 1000")
        if not self.concurrency or min(self.concurrency) < 1 or max(self.concurrency) > 1024:
            raise ConfigError("--concurrency needs levels between 1 and 1024, e.g. 1,10,32")
        if self.gate_concurrency < 1:
            raise ConfigError("--gate-concurrency must be >= 1")
        if self.p95_budget_ms <= 0:
            raise ConfigError("--p95-ms must be > 0")
        if any(ef < 1 for ef in self.ef_sweep):
            raise ConfigError("--ef values must be >= 1")

    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(sorted({*self.concurrency, self.gate_concurrency}))


class _TimedEngine:
    """Proxy around an ANN engine: accumulates time spent in ``search`` per thread.

    Also lets the ef sweep set the HNSW beam width without touching the index config.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._local = threading.local()
        self.ef: int | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __len__(self) -> int:
        return len(self._inner)

    def search(self, queries: Any, k: int, allowed: Any = None, **kwargs: Any) -> Any:
        if self.ef is not None and kwargs.get("ef") is None:
            kwargs["ef"] = max(self.ef, k)
        t0 = time.perf_counter()
        try:
            return self._inner.search(queries, k, allowed, **kwargs)
        finally:
            self._local.ms = getattr(self._local, "ms", 0.0) + (time.perf_counter() - t0) * 1e3

    def take_ms(self) -> float:
        ms = float(getattr(self._local, "ms", 0.0))
        self._local.ms = 0.0
        return ms


@contextmanager
def instrumented(space: SpaceIndex) -> Iterator[_TimedEngine]:
    # The benchmark reaches into SpaceIndex on purpose: swapping the engine for a timing proxy
    # measures the unmodified search path stage by stage.
    inner = space._engine  # noqa: SLF001
    timed = _TimedEngine(inner)
    space._engine = timed  # type: ignore[assignment]  # noqa: SLF001
    try:
        yield timed
    finally:
        space._engine = inner  # noqa: SLF001


@dataclass
class Target:
    """One index configuration to measure, hydrating from ``engine``'s store."""

    label: str
    space: SpaceIndex
    engine: Engine
    rss_bytes_per_vector: float
    disk_bytes_per_vector: float
    open_s: float
    build_s: float | None = None
    anon_bytes_per_vector: float = float("nan")


def _run_query(target: Target, timed: _TimedEngine, q: Vectors, k: int) -> tuple[float, ...]:
    timed.take_ms()
    t0 = time.perf_counter()
    res, _plan = target.space.search(q, k)
    t1 = time.perf_counter()
    ann = timed.take_ms()
    fused = [
        (int(key), float(s)) for key, s in zip(res.keys[0], res.scores[0], strict=True) if key >= 0
    ]
    hits = target.engine.retriever._hydrate(fused, {"dense": fused})  # noqa: SLF001
    t2 = time.perf_counter()
    search_ms = (t1 - t0) * 1e3
    return ((t2 - t0) * 1e3, ann, max(0.0, search_ms - ann), (t2 - t1) * 1e3, float(len(hits)))


def run_level(
    target: Target, timed: _TimedEngine, queries: Vectors, k: int, concurrency: int, warmup: int
) -> dict[str, Any]:
    """Run every query once with ``concurrency`` closed-loop workers; summarise per stage."""
    nq = len(queries)

    def one(i: int) -> tuple[float, ...]:
        j = i % nq
        return _run_query(target, timed, queries[j : j + 1], k)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench") as pool:
        list(pool.map(one, range(max(warmup, 2 * concurrency))))
        t0 = time.perf_counter()
        samples = np.array(list(pool.map(one, range(nq))), dtype=np.float64)
        wall = time.perf_counter() - t0
    out: dict[str, Any] = {
        "concurrency": concurrency,
        "queries": nq,
        "qps": round(nq / wall, 1),
        "min_hits": int(samples[:, 4].min()),
    }
    for col, stage in enumerate(STAGES):
        out[stage] = Latency.of(samples[:, col]).to_dict()
    return out


def measure_recall(
    target: Target,
    timed: _TimedEngine,
    queries: Vectors,
    truth: np.ndarray,
    k: int,
    ef: int | None,
) -> dict[str, Any]:
    """Single-thread pass: recall@k against ``truth`` and e2e latency at beam width ``ef``.

    The engine searches with ``max(ef, k × oversample)`` (a beam narrower than the candidate
    count cannot return it), so low ``ef`` values of a rescoring index collapse to one point.
    """
    timed.ef = ef
    found = np.full((len(queries), k), -1, dtype=np.int64)
    lat = np.empty(len(queries))
    plan = ""
    try:
        for i in range(len(queries)):
            t0 = time.perf_counter()
            res, plan = target.space.search(queries[i : i + 1], k)
            keys = [int(x) for x in res.keys[0] if x >= 0]
            target.engine.retriever._hydrate([(x, 0.0) for x in keys], {})  # noqa: SLF001
            lat[i] = (time.perf_counter() - t0) * 1e3
            found[i, : len(keys)] = keys[:k]
    finally:
        timed.ef = None
    summary = Latency.of(lat)
    return {
        "ef": ef or target.space.config.ef_search,
        f"recall@{k}": round(recall_at_k(found, truth, k), 4),
        "p50_ms": round(summary.p50, 3),
        "p95_ms": round(summary.p95, 3),
        "plan": plan,
    }


def index_pass(
    space: SpaceIndex, timed: _TimedEngine, queries: Vectors, k: int
) -> dict[str, float]:
    """Mean index stages on this thread, back to back, no hydration in between (the way
    ``benchmarks/index_bench.py`` times ``SpaceIndex.search``), and the graph's descent alone.

    ``descent_ms`` is a 1-NN engine search at beam width 1: the greedy walk down HNSW's upper
    layers, whose length grows with ln N, while the beam search of the bottom layer at a fixed
    ``ef_search`` does not (measured: ANN + rescoring 0.46 ms at 20k, 0.44 at 100k, 0.49 at 1M
    × 512). ``edgerag plan`` scales only the descent with N. Each thread of a pool read ~1.3×
    slower here, hydration between searches ~1.1× slower again: neither is the index's cost.
    """
    ann, whole, descent = (np.empty(len(queries)) for _ in range(3))
    for i in range(len(queries)):
        q = queries[i : i + 1]
        timed.take_ms()
        t0 = time.perf_counter()
        space.search(q, k)
        whole[i] = (time.perf_counter() - t0) * 1e3
        ann[i] = timed.take_ms()
    for i in range(len(queries)):
        timed.search(queries[i : i + 1], 1, ef=1)
        descent[i] = timed.take_ms()
    return {
        "ann_ms": round(float(ann.mean()), 4),
        "rescore_ms": round(float((whole - ann).mean()), 4),
        "descent_ms": round(float(descent.mean()), 4),
    }


def _finite(x: float, digits: int) -> float | None:
    """JSON has no NaN: a failed memory probe reads as null."""
    return round(x, digits) if math.isfinite(x) else None


def bench_target(target: Target, queries: Vectors, options: BenchOptions) -> dict[str, Any]:
    """Recall (+ ef sweep) and every concurrency level for one target."""
    space = target.space
    n = len(space)
    rk = min(options.recall_k, n)
    t0 = time.perf_counter()
    truth = space.exact_search(queries, rk).keys
    exact_s = time.perf_counter() - t0
    row: dict[str, Any] = {
        "index": target.label,
        "vectors": n,
        "rss_B_per_vec": _finite(target.rss_bytes_per_vector, 1),
        "anon_B_per_vec": _finite(target.anon_bytes_per_vector, 1),
        "disk_B_per_vec": round(target.disk_bytes_per_vector, 1),
        "open_s": _finite(target.open_s, 2),
        "build_s": None if target.build_s is None else round(target.build_s, 2),
        "exact_batch_ms_per_query": round(exact_s * 1e3 / len(queries), 3),
    }
    with instrumented(space) as timed:
        base = measure_recall(target, timed, queries, truth, rk, None)
        row[f"recall@{options.recall_k}"] = base[f"recall@{rk}"]
        row["plan"] = base["plan"]
        row["single_thread"] = index_pass(space, timed, queries, rk)
        sweep = [base]
        for ef in options.ef_sweep:
            if ef != space.config.ef_search:
                sweep.append(measure_recall(target, timed, queries, truth, rk, ef))
        row["sweep"] = sorted(sweep, key=lambda s: s["ef"])
        row["levels"] = []
        for c in options.levels:
            level = run_level(target, timed, queries, options.k, c, options.warmup)
            logger.info("%s c=%d: %s", target.label, c, level)
            row["levels"].append(level)
    gate = next(lv for lv in row["levels"] if lv["concurrency"] == options.gate_concurrency)
    v = verdict(
        gate["e2e"]["p95"],
        options.p95_budget_ms,
        options.gate_concurrency,
        options.queries,
        options.k,
    )
    row["verdict"] = {"passed": v.passed, "line": f"{target.label}: {v.line}"}
    return row


# ---------------------------------------------------------------------------------- targets


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _label(cfg: IndexConfig) -> str:
    return f"{cfg.backend}/{cfg.quantization}"


def _warm(space: SpaceIndex, queries: Vectors, count: int = 50) -> None:
    for i in range(min(count, len(queries))):
        space.search(queries[i : i + 1], 10)


def _target(
    label: str, space: SpaceIndex, engine: Engine, queries: Vectors, build_s: float | None
) -> Target:
    nan = float("nan")
    if (space.directory / MANIFEST).exists():
        mem = index_memory(space, queries)
    else:  # never checkpointed: nothing on disk for a child to open
        mem = {"rss_B_per_vec": nan, "anon_B_per_vec": nan, "open_s": nan}
    _warm(space, queries)
    n = max(1, len(space))
    return Target(
        label,
        space,
        engine,
        mem["rss_B_per_vec"],
        _dir_bytes(space.directory) / n,
        mem["open_s"],
        build_s,
        mem["anon_B_per_vec"],
    )


def engine_target(engine: Engine, space_name: str, queries: Vectors) -> Target:
    space = engine.indexes[space_name]
    return _target(_label(space.config), space, engine, queries, None)


def variant_target(
    engine: Engine, space_name: str, cfg: IndexConfig, directory: Path, queries: Vectors
) -> Target:
    """Build another index of the same space from the store's vectors (the user's collection
    is never modified) and checkpoint it; memory is measured by reopening it in a child."""
    spec = engine.indexes[space_name].spec
    t0 = time.perf_counter()
    index = SpaceIndex.open(directory, spec, cfg)
    for keys, vectors in engine.store.iter_vectors(space_name):
        index.upsert(keys, vectors)
    index.checkpoint(engine.store.last_lsn())
    return _target(_label(cfg), index, engine, queries, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------- sources


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": cores,
        "cpu": cpu,
        "python": platform.python_version(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def _quantizations(requested: tuple[str, ...], default: str) -> tuple[str, ...]:
    quants = requested or (default,)
    bad = [q for q in quants if q not in QUANTIZATIONS]
    if bad:
        raise ConfigError(f"unknown quantization {bad[0]!r}; choose from {list(QUANTIZATIONS)}")
    return tuple(dict.fromkeys(quants))


def _run_targets(
    engine: Engine,
    space_name: str,
    quants: tuple[str, ...],
    queries: Vectors,
    options: BenchOptions,
    scratch: Path,
    build_s: float | None,
) -> list[dict[str, Any]]:
    own = engine.indexes[space_name].config
    rows = []
    for quant in quants:
        if quant == own.quantization:
            target = engine_target(engine, space_name, queries)
            target.build_s = build_s
            rows.append(bench_target(target, queries, options))
            continue
        directory = scratch / f"variant-{quant}"
        target = variant_target(
            engine, space_name, replace(own, quantization=quant), directory, queries
        )
        try:
            rows.append(bench_target(target, queries, options))
        finally:
            target.space.close()
            shutil.rmtree(directory, ignore_errors=True)
    return rows


def _report(
    source: dict[str, Any],
    rows: list[dict[str, Any]],
    options: BenchOptions,
    machine: dict[str, Any],
) -> dict[str, Any]:
    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    machine["process_rss_MB"] = round(rss_bytes() / 1e6, 1)
    return {
        "collection": source,
        "options": {
            "queries": options.queries,
            "k": options.k,
            "concurrency": list(options.levels),
            "gate_concurrency": options.gate_concurrency,
            "p95_budget_ms": options.p95_budget_ms,
            "recall_k": options.recall_k,
            "ef_sweep": list(options.ef_sweep),
        },
        "machine": machine,
        "targets": rows,
        "passed": all(r["verdict"]["passed"] for r in rows),
    }


def bench_synthetic(
    n: int,
    dim: int,
    options: BenchOptions,
    quantizations: tuple[str, ...] = (),
    backend: str = "faiss",
    index: IndexConfig | None = None,
    payload_chars: int = 600,
    items_per_doc: int = 500,
    data_seed: int = 42,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Build a temporary synthetic collection (clustered vectors, real payloads) and bench it."""
    if n < 1 or dim < 2:
        raise ConfigError("--synthetic needs N >= 1 and --dim >= 2")
    machine = _machine()
    base_cfg = replace(index or IndexConfig(), backend=backend)
    quants = _quantizations(quantizations, base_cfg.quantization)
    cfg = replace(base_cfg, quantization=quants[0])
    with ExitStack() as stack:
        scratch = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="edgerag-bench-", dir=workdir))
        )
        data = clustered(n, dim, data_seed)
        queries = perturb(data, options.queries, options.seed, options.noise)
        t0 = time.perf_counter()
        build_synthetic(scratch / "collection", data, cfg, items_per_doc, payload_chars).close()
        build_s = time.perf_counter() - t0
        del data
        gc.collect()
        t0 = time.perf_counter()
        engine = stack.enter_context(open_synthetic(scratch / "collection", dim, cfg))
        open_s = time.perf_counter() - t0
        rows = _run_targets(engine, "text", quants, queries, options, scratch, build_s)
        source = {
            "source": "synthetic",
            "vectors": n,
            "dim": dim,
            "payload_chars": payload_chars,
            "open_s": round(open_s, 2),
            "store_bytes": engine.store.file_size(),
        }
    return _report(source, rows, options, machine)


def _stored_spec(db: Path, space_name: str) -> Any:
    if not (db / "store.db").exists():
        raise NotFoundError(f"{db}: no edgerag collection here (no store.db)")
    store = Store(db / "store.db")
    try:
        spaces = store.spaces()
    finally:
        store.close()
    if space_name not in spaces:
        raise NotFoundError(f"{db}: no vector space {space_name!r} (has {sorted(spaces)})")
    return spaces[space_name]


def bench_db(
    db: Path,
    options: BenchOptions,
    quantizations: tuple[str, ...] = (),
    space_name: str = "text",
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Bench an existing collection; queries are its own stored vectors, perturbed."""
    machine = _machine()
    spec = _stored_spec(db, space_name)
    t0 = time.perf_counter()
    with Engine.open(db, None, encoder=StoredSpaceEncoder(spec)) as engine:
        open_s = time.perf_counter() - t0
        space = engine.indexes[space_name]
        if len(space) == 0:
            raise ConfigError(f"{db}: space {space_name!r} holds no vectors to bench")
        rng = np.random.default_rng(options.seed)
        keys = space.keys()
        sample = space.get_vectors(keys[rng.integers(0, len(keys), min(len(keys), 10_000))])
        queries = perturb(sample, options.queries, options.seed, options.noise)
        quants = _quantizations(quantizations, space.config.quantization)
        with tempfile.TemporaryDirectory(prefix="edgerag-bench-", dir=workdir) as scratch:
            rows = _run_targets(engine, space_name, quants, queries, options, Path(scratch), None)
        source = {
            "source": str(db),
            "vectors": len(space),
            "dim": spec.dim,
            "encoder": spec.encoder,
            "open_s": round(open_s, 2),
            "store_bytes": engine.store.file_size(),
        }
    return _report(source, rows, options, machine)


# ---------------------------------------------------------------------------------- output


def markdown_table(report: dict[str, Any]) -> str:
    """One row per (index, concurrency): e2e and per-stage latency, QPS, recall, memory."""
    rk = report["options"]["recall_k"]
    head = (
        f"| index | conc | QPS | e2e p50 | e2e p95 | e2e p99 | e2e max | ann p50/p95 | "
        f"rescore p50/p95 | hydrate p50/p95 | recall@{rk} | RSS B/vec | disk B/vec |"
    )
    lines = [head, "|" + "---|" * 13]
    for row in report["targets"]:
        for lv in row["levels"]:
            e = lv["e2e"]
            cells = [
                row["index"],
                lv["concurrency"],
                f"{lv['qps']:.0f}",
                f"{e['p50']:.2f}",
                f"{e['p95']:.2f}",
                f"{e['p99']:.2f}",
                f"{e['max']:.1f}",
                *(
                    f"{lv[s]['p50']:.2f} / {lv[s]['p95']:.2f}"
                    for s in ("ann", "rescore", "hydrate")
                ),
                f"{row[f'recall@{rk}']:.3f}",
                "–" if row["rss_B_per_vec"] is None else f"{row['rss_B_per_vec']:.0f}",
                f"{row['disk_B_per_vec']:.0f}",
            ]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def sweep_table(report: dict[str, Any]) -> str:
    rk = report["options"]["recall_k"]
    lines = [
        f"| index | ef_search | recall@{rk} | p50 ms (c=1) | p95 ms (c=1) | plan |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["targets"]:
        for s in row["sweep"]:
            lines.append(
                f"| {row['index']} | {s['ef']} | {s[f'recall@{rk}']:.3f} | "
                f"{s['p50_ms']:.3f} | {s['p95_ms']:.3f} | {s['plan']} |"
            )
    return "\n".join(lines)


def verdict_lines(report: dict[str, Any]) -> list[str]:
    """One PASS/FAIL line per measured index."""
    return [row["verdict"]["line"] for row in report["targets"]]
