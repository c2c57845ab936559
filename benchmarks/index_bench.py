"""Index benchmark: every engine × quantization through SpaceIndex vs the raw library.

Usage::

    PYTHONPATH=src python benchmarks/index_bench.py --n 100000 --dim 512 --queries 1000 \
        --engines flat,faiss,usearch --quant f32,f16,int8,binary [--json out.json]

Data are clustered, seeded, L2-normalised vectors; queries are fresh points from the same
clusters. For each row: build time (upserts + first checkpoint), bytes per vector on disk and in
RSS, recall@10 against an exact numpy scan, single-query p50/p99, the *raw* library call on the
very same graph (faiss ``index.search`` / usearch ``Index.search``, no rescoring, no key mapping)
so the SpaceIndex overhead is a ratio, and filtered search at 10% and 1% selectivity.

Items are keyed as an engine keys them (``types.item_key``: 63-bit hashes of document and
position, 500 items per document); ``--keys dense`` keys them 0..n-1 instead, which maps keys
through a direct array no engine collection gets. Each filtered row asks every query with the
same filter, as a tenant or site filter repeats (the engine keeps a repeated set's bitmap or
gathered codes until its next write); "1% new" asks each query with a filter of its own, so
nothing kept is reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgerag.bench.synthetic import clustered, item_keys
from edgerag.index import space as space_module
from edgerag.index.base import IndexConfig
from edgerag.index.space import SpaceIndex
from edgerag.types import SpaceSpec

logger = logging.getLogger(__name__)


def exact_topk(data: np.ndarray, queries: np.ndarray, k: int, rows: np.ndarray | None = None):
    """Exact top-k row ids by inner product (optionally within ``rows``)."""
    sub = data if rows is None else data[rows]
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(queries), k), -1, dtype=np.int64)
    for start in range(0, len(sub), 200_000):
        s = queries @ sub[start : start + 200_000].T
        idx = np.argpartition(-s, k - 1, axis=1)[:, :k]
        ss = np.take_along_axis(s, idx, axis=1)
        cand_s = np.concatenate([best_s, ss], axis=1)
        cand_i = np.concatenate([best_i, idx + start], axis=1)
        top = np.argsort(-cand_s, axis=1)[:, :k]
        best_s = np.take_along_axis(cand_s, top, axis=1)
        best_i = np.take_along_axis(cand_i, top, axis=1)
    return best_i if rows is None else rows[best_i]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [
        len(set(f[f >= 0].tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)
    ]
    return float(np.sum(hits) / truth.size)


def rss_bytes() -> tuple[int, int]:
    """(total RSS, anonymous RSS) in bytes; the difference is mapped files (the originals)."""
    fields = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon"):
                fields[name] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["RssAnon"]


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def time_queries(fn, queries: np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Run ``fn(q[i:i+1])`` per query; returns keys (nq, k), plans and latencies in ms."""
    keys, plans, lat = [], [], np.empty(len(queries))
    for i in range(min(20, len(queries))):  # warm caches / lazily built structures
        fn(queries[i : i + 1])
    for i in range(len(queries)):
        t = time.perf_counter_ns()
        out = fn(queries[i : i + 1])
        lat[i] = (time.perf_counter_ns() - t) / 1e6
        if isinstance(out, tuple):
            res, plan = out
            keys.append(res.keys[0])
            plans.append(plan)
        else:
            keys.append(out)
    return np.stack(keys), plans, lat


def profile_queries(space: SpaceIndex, queries: np.ndarray, k: int) -> None:
    """cProfile every single-query search once; the top entries by own time go to stderr."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for i in range(len(queries)):
        space.search(queries[i : i + 1], k)
    prof.disable()
    pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(16)


def time_paired(fn, raw, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time ``fn`` and ``raw`` on each query back to back; returns (fn ms, raw keys, raw ms).

    The order alternates per query, so neither side always gets the caches the other warmed.
    """
    lat, rlat, rkeys = np.empty(len(queries)), np.empty(len(queries)), []
    for i in range(len(queries)):
        q = queries[i : i + 1]
        if i % 2:
            t = time.perf_counter_ns()
            rkeys.append(raw(q))
            t1 = time.perf_counter_ns()
            fn(q)
            rlat[i], lat[i] = (t1 - t) / 1e6, (time.perf_counter_ns() - t1) / 1e6
        else:
            t = time.perf_counter_ns()
            fn(q)
            t1 = time.perf_counter_ns()
            rkeys.append(raw(q))
            lat[i], rlat[i] = (t1 - t) / 1e6, (time.perf_counter_ns() - t1) / 1e6
    return lat, np.stack(rkeys), rlat


def memory_probe(directory: Path, cfg: IndexConfig, dim: int, queries: np.ndarray) -> dict:
    """Resident bytes per vector of the checkpoint in ``directory``, opened in a new process.

    The child imports everything, reads its RSS (the baseline), opens the index the way a
    server does, runs every query once (warm-up: rescoring touches the originals' pages), and
    reads RSS again. Reported: total RSS (anonymous + the mapped originals' touched pages) and
    anonymous only, per vector.
    """
    with tempfile.TemporaryDirectory() as td:
        qpath = Path(td) / "q.npy"
        np.save(qpath, queries)
        cmd = [
            sys.executable,
            __file__,
            "--probe",
            str(directory),
            "--probe-queries",
            str(qpath),
            "--probe-config",
            json.dumps(dataclasses.asdict(cfg)),
            "--dim",
            str(dim),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def warm_rss_per_vector(open_space, queries: np.ndarray) -> dict[str, int]:
    """Open a space, search every query once: resident bytes per vector after opening and
    after the searches (all, anonymous heap, file-backed pages), from a clean baseline."""
    gc.collect()
    rss0 = rss_bytes()
    space = open_space()
    rss_open = rss_bytes()
    for i in range(len(queries)):
        space.search(queries[i : i + 1], 10)
    gc.collect()
    rss1 = rss_bytes()
    n = len(space)
    return {
        "rss_open_B_per_vec": round((rss_open[0] - rss0[0]) / n),
        "rss_B_per_vec": round((rss1[0] - rss0[0]) / n),
        "heap_B_per_vec": round((rss1[1] - rss0[1]) / n),
        "file_B_per_vec": round(((rss1[0] - rss1[1]) - (rss0[0] - rss0[1])) / n),
    }


def probe_main(args: argparse.Namespace) -> int:
    """Child side of :func:`memory_probe`."""
    cfg = IndexConfig(**json.loads(args.probe_config))
    spec = SpaceSpec("bench", "synthetic", "1", args.dim)
    opened = lambda: SpaceIndex.open(Path(args.probe), spec, cfg)  # noqa: E731
    print(json.dumps(warm_rss_per_vector(opened, np.load(args.probe_queries))))
    return 0


def raw_search_fn(space: SpaceIndex, k: int):
    """The underlying library call on the same structure, as a user of the library would.

    Fair pairing: the raw call gets the very beam width (ef) and candidate count SpaceIndex
    uses (``k × oversample`` when rescoring), and returns its top-k of them, so the ratio is
    the cost of key mapping + rescoring, not of a narrower search.
    """
    engine = space._engine  # noqa: SLF001 - benchmark reaches in on purpose
    name = space.config.backend
    kk = space.candidates(k)
    if name == "faiss":
        import faiss

        index = engine._index  # noqa: SLF001
        params = faiss.SearchParametersHNSW(efSearch=max(space.config.ef_search, kk))
        faiss.omp_set_num_threads(1)
        binary = space.config.quantization == "binary"
        labels = engine._label_keys  # noqa: SLF001

        def run(q: np.ndarray) -> np.ndarray:
            x = np.packbits(q > 0, axis=1) if binary else q
            _, ids = index.search(x, kk, params=params)
            return labels[ids[0, :k]]

        return run
    if name == "usearch":
        index = engine._index  # noqa: SLF001
        index.expansion_search = max(space.config.ef_search, kk)
        binary = space.config.quantization == "binary"

        def run(q: np.ndarray) -> np.ndarray:
            x = np.packbits(q > 0, axis=1) if binary else q
            m = index.search(x, kk, threads=1)
            out = np.full(k, -1, dtype=np.int64)
            got = np.asarray(m.keys, dtype=np.int64).ravel()[:k]
            out[: len(got)] = got
            return out

        return run
    return None


def row_keys(n: int, dense: bool) -> np.ndarray:
    """Row i's key: as an engine makes it (``synthetic.item_keys``), or i itself with
    ``dense``."""
    if dense:
        return np.arange(n, dtype=np.int64)
    keys = item_keys(0, n)
    if len(np.unique(keys)) != n:
        raise SystemExit("item key collision")  # 63-bit hashes of 1M items: not expected
    return keys


def build_or_open(
    directory: Path,
    spec: SpaceSpec,
    cfg: IndexConfig,
    data: np.ndarray,
    keys: np.ndarray,
    batch: int,
) -> tuple[SpaceIndex, dict[str, Any]]:
    """Build the index into ``directory`` (upserts + checkpoint), or open the one kept there."""
    n = len(data)
    info: dict[str, Any] = {}
    if (directory / "MANIFEST.json").exists():
        t0 = time.perf_counter()
        space = SpaceIndex.open(directory, spec, cfg)
        info["open_s"] = round(time.perf_counter() - t0, 2)
        if len(space) == n:
            return space, info
        space.close()
        shutil.rmtree(directory)
    t0 = time.perf_counter()
    space = SpaceIndex.open(directory, spec, cfg)
    for start in range(0, n, batch):
        space.upsert(keys[start : start + batch], data[start : start + batch])
    info["build_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    space.checkpoint(1)
    info["checkpoint_s"] = round(time.perf_counter() - t0, 2)
    return space, info


def bench_one(
    engine: str,
    quant: str,
    data: np.ndarray,
    queries: np.ndarray,
    truth: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    n, dim = data.shape
    k = 10
    cfg = IndexConfig(
        backend=engine,
        quantization=quant,
        oversample=args.oversample,
        connectivity=args.m,
        ef_construction=args.ef_construction,
        ef_search=args.ef_search,
        exact_threshold=args.exact_threshold,
        exact_fraction=args.exact_fraction,
        rescore=args.rescore,
    )
    spec = SpaceSpec("bench", "synthetic", "1", dim)
    row: dict[str, Any] = {"engine": engine, "quant": quant}
    # flat is O(n) per query: fewer timed queries keep the run short
    nq = min(len(queries), args.flat_queries) if engine == "flat" else len(queries)
    qs = queries[:nq]
    with tempfile.TemporaryDirectory(dir=args.tmp) as td:
        if args.keep:
            name = f"{engine}-{quant}-n{n}-d{dim}-M{args.m}-efc{args.ef_construction}"
            name += "" if args.keys == "dense" else "-itemkeys"
            directory = Path(args.keep) / name
        else:
            directory = Path(td) / "index"
        space, info = build_or_open(directory, spec, cfg, data, truth["keys"], args.batch)
        row.update(info)
        row["disk_B_per_vec"] = round(dir_bytes(directory) / n)
        engine_files = [p for p in directory.glob("ckpt-*/*") if not p.name.startswith("originals")]
        row["engine_B_per_vec"] = round(sum(p.stat().st_size for p in engine_files) / n)
        # Memory from a clean baseline, in a fresh process (this one's allocator holds the
        # build's freed pages, which a reopened index would silently reuse).
        row.update(memory_probe(directory, cfg, dim, qs))
        found, plans, lat = time_queries(lambda q: space.search(q, k), qs)
        row["recall@10"] = round(recall(found, truth["all"][:nq]), 4)
        row["p50_ms"] = round(float(np.percentile(lat, 50)), 3)
        row["p99_ms"] = round(float(np.percentile(lat, 99)), 3)
        row["plan"] = plans[0]
        raw = raw_search_fn(space, k)
        if raw is not None:
            # paired: each query runs through SpaceIndex then the raw call back to back, so
            # both see the same cache and machine-load conditions; both p50/p99 come from here
            lat, rfound, rlat = time_paired(lambda q: space.search(q, k), raw, qs)
            row["p50_ms"] = round(float(np.percentile(lat, 50)), 3)
            row["p99_ms"] = round(float(np.percentile(lat, 99)), 3)
            row["raw_recall@10"] = round(recall(rfound, truth["all"][:nq]), 4)
            row["raw_p50_ms"] = round(float(np.percentile(rlat, 50)), 3)
            row["raw_p99_ms"] = round(float(np.percentile(rlat, 99)), 3)
            row["overhead_x"] = round(row["p50_ms"] / row["raw_p50_ms"], 2)

        if args.profile:
            profile_queries(space, qs, k)
        row["mean_ms"] = round(float(np.mean(lat)), 3)
        if args.plan_check:
            from edgerag.bench.plan import Calibration, predict_index_ms

            cal = Calibration.load(Path(args.plan_check))
            if quant in cal.precisions:
                row["plan_predicted_mean_ms"] = round(predict_index_ms(cal, quant, n, dim), 3)
                row["plan_error"] = round(row["plan_predicted_mean_ms"] / row["mean_ms"] - 1, 3)

        for label in ("10%", "1%"):
            allowed = truth[f"allowed_{label}"]
            ffound, fplans, flat_ = time_queries(lambda q, a=allowed: space.search(q, k, a), qs)
            row[f"f{label}_recall@10"] = round(recall(ffound, truth[f"truth_{label}"][:nq]), 4)
            row[f"f{label}_p50_ms"] = round(float(np.percentile(flat_, 50)), 3)
            row[f"f{label}_p99_ms"] = round(float(np.percentile(flat_, 99)), 3)
            row[f"f{label}_plan"] = fplans[0]
            if fplans[0].startswith("exact-codes"):
                # the previous exact path on the same set: gather + score the f32 originals
                saved = space_module.EXACT_CODES_MIN_FACTOR
                space_module.EXACT_CODES_MIN_FACTOR = 1 << 62
                try:
                    ofound, oplans, olat = time_queries(
                        lambda q, a=allowed: space.search(q, k, a), qs
                    )
                finally:
                    space_module.EXACT_CODES_MIN_FACTOR = saved
                row[f"f{label}_f32scan_recall@10"] = round(
                    recall(ofound, truth[f"truth_{label}"][:nq]), 4
                )
                row[f"f{label}_f32scan_p50_ms"] = round(float(np.percentile(olat, 50)), 3)
            if engine != "flat" and fplans[0].startswith("exact"):
                # what the planner avoided: the ANN filter path on the same graph
                default_cfg = space.config
                space.config = dataclasses.replace(cfg, exact_threshold=0, exact_fraction=0.0)
                afound, aplans, alat = time_queries(lambda q, a=allowed: space.search(q, k, a), qs)
                space.config = default_cfg
                row[f"f{label}_ann_recall@10"] = round(
                    recall(afound, truth[f"truth_{label}"][:nq]), 4
                )
                row[f"f{label}_ann_p50_ms"] = round(float(np.percentile(alat, 50)), 3)
                row[f"f{label}_ann_plan"] = aplans[0]
        new_found, new_lat = [], []
        for q, allowed in zip(qs, truth["allowed_1%_each"], strict=False):
            t = time.perf_counter_ns()
            res, _ = space.search(q[None, :], k, allowed)
            new_lat.append((time.perf_counter_ns() - t) / 1e6)
            new_found.append(res.keys[0])
        new_truth = truth["truth_1%_each"][: len(new_found)]
        row["f1%new_recall@10"] = round(recall(np.stack(new_found), new_truth), 4)
        row["f1%new_p50_ms"] = round(float(np.percentile(new_lat, 50)), 3)
        space.close()
    return row


COLUMNS = [
    ("engine", "engine"),
    ("quant", "quant"),
    ("build_s", "build s"),
    ("open_s", "open s"),
    ("disk_B_per_vec", "disk B/vec"),
    ("engine_B_per_vec", "engine B/vec"),
    ("rss_open_B_per_vec", "RSS open B/vec"),
    ("rss_B_per_vec", "RSS warm B/vec"),
    ("heap_B_per_vec", "anon warm B/vec"),
    ("recall@10", "recall@10"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("raw_recall@10", "raw recall"),
    ("raw_p50_ms", "raw p50 ms"),
    ("overhead_x", "overhead"),
    ("f10%_recall@10", "10% recall"),
    ("f10%_p50_ms", "10% p50 ms"),
    ("f10%_plan", "10% plan"),
    ("f1%_recall@10", "1% recall"),
    ("f1%_p50_ms", "1% p50 ms"),
    ("f1%_p99_ms", "1% p99 ms"),
    ("f1%_plan", "1% plan"),
    ("f1%new_recall@10", "1% new recall"),
    ("f1%new_p50_ms", "1% new p50 ms"),
    ("f10%_p99_ms", "10% p99 ms"),
    ("f10%_f32scan_recall@10", "10% f32-scan recall"),
    ("f10%_f32scan_p50_ms", "10% f32-scan p50 ms"),
    ("f1%_f32scan_recall@10", "1% f32-scan recall"),
    ("f1%_f32scan_p50_ms", "1% f32-scan p50 ms"),
    ("f10%_ann_recall@10", "10% ANN recall"),
    ("f10%_ann_p50_ms", "10% ANN p50 ms"),
    ("f1%_ann_recall@10", "1% ANN recall"),
    ("f1%_ann_p50_ms", "1% ANN p50 ms"),
    ("mean_ms", "mean ms"),
    ("plan_predicted_mean_ms", "plan predicted mean ms"),
    ("plan_error", "plan error"),
    ("plan", "plan"),
]


def markdown(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(c[1] for c in COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(str(r.get(c[0], "–")) for c in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--engines", default="flat,faiss,usearch")
    p.add_argument("--quant", default="f32,f16,int8,binary")
    p.add_argument("--oversample", type=float, default=IndexConfig.oversample)
    p.add_argument("--m", type=int, default=IndexConfig.connectivity)
    p.add_argument("--ef-construction", type=int, default=IndexConfig.ef_construction)
    p.add_argument("--ef-search", type=int, default=IndexConfig.ef_search)
    p.add_argument("--exact-threshold", type=int, default=IndexConfig.exact_threshold)
    p.add_argument("--exact-fraction", type=float, default=IndexConfig.exact_fraction)
    p.add_argument(
        "--rescore", default=IndexConfig.rescore, help="originals | f16 (IndexConfig.rescore)"
    )
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument(
        "--keys",
        choices=("item", "dense"),
        default="item",
        help="item: keys as an engine makes them (hashes); dense: 0..n-1",
    )
    p.add_argument("--flat-queries", type=int, default=100)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--tmp", default=None, help="directory for index files (default: system tmp)")
    p.add_argument("--json", dest="json_path", default=None)
    p.add_argument(
        "--keep",
        default=None,
        help="keep built indexes under this directory and reuse them on the next run",
    )
    p.add_argument(
        "--plan-check",
        default=None,
        help="an `edgerag plan` calibration JSON: report its predicted mean index latency "
        "at this n × dim beside the measured one",
    )
    p.add_argument(
        "--profile", action="store_true", help="cProfile the unfiltered queries (to stderr)"
    )
    p.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    p.add_argument("--probe-queries", default=None, help=argparse.SUPPRESS)
    p.add_argument("--probe-config", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.probe:
        return probe_main(args)

    t0 = time.perf_counter()
    data = clustered(args.n, args.dim, args.seed)
    # queries: fresh points near stored ones (same clusters), not copies of them
    rng = np.random.default_rng(args.seed + 7)
    queries = data[rng.integers(0, args.n, args.queries)] + 0.3 * rng.standard_normal(
        (args.queries, args.dim), dtype=np.float32
    ) / np.sqrt(args.dim)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    queries = queries.astype(np.float32)
    keys = row_keys(args.n, args.keys == "dense")
    # ground truth as keys; a filter's allowed keys come sorted, as the store's SQL gives them
    truth: dict[str, Any] = {"keys": keys, "all": keys[exact_topk(data, queries, 10)]}
    for label, frac in (("10%", 0.10), ("1%", 0.01)):
        rows = np.sort(rng.choice(args.n, int(args.n * frac), replace=False))
        truth[f"allowed_{label}"] = np.sort(keys[rows])
        truth[f"truth_{label}"] = keys[exact_topk(data, queries, 10, rows)]
    each = [np.sort(rng.choice(args.n, args.n // 100, replace=False)) for _ in queries]
    truth["allowed_1%_each"] = [np.sort(keys[rows]) for rows in each]
    truth["truth_1%_each"] = keys[
        np.concatenate(
            [exact_topk(data, q[None, :], 10, rows) for q, rows in zip(queries, each, strict=True)]
        )
    ]
    print(
        f"data {args.n}x{args.dim} + ground truth in {time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
    )

    results = []
    for engine in args.engines.split(","):
        for quant in args.quant.split(","):
            t = time.perf_counter()
            row = bench_one(engine, quant, data, queries, truth, args)
            results.append(row)
            print(
                f"{engine}/{quant} done in {time.perf_counter() - t:.1f}s: {row}",
                file=sys.stderr,
                flush=True,
            )
    print(
        f"\nn={args.n} dim={args.dim} queries={args.queries} M={args.m} "
        f"efC={args.ef_construction} ef={args.ef_search} oversample={args.oversample} "
        f"exact_threshold={args.exact_threshold} exact_fraction={args.exact_fraction} "
        f"cores={os.cpu_count()}\n"
    )
    print(markdown(results))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"args": vars(args), "rows": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
