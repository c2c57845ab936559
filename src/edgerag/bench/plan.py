"""``edgerag plan``: hardware dimensioning and an edge-vs-cloud cost model, from measurements.

Calibration: a short synthetic bench on this machine (default 20,000 vectors at the target
dimension, capped at 768) measures, per precision, the index's anonymous resident bytes per vector
(reopened in a fresh process, fitted over two sizes; the memory-mapped f32 originals are page
cache, modelled separately below), disk bytes per vector, the store bytes per item, the
per-stage latency at one client (ANN, rescoring, payload hydration) and recall@10. The plan
scales those with a stated model:

* memory per vector = code bytes at the target dim (f32 4·D, int8 D, binary D/8) + the measured
  non-code overhead (HNSW links, key maps; independent of D); index RAM = N × that;
* RAM = index RAM + base process (encoder model, runtime) + a cached share of the f32 originals
  (rescoring and filtered exact scans read them), × headroom, rounded up to a power of two GB;
* latency: ANN and rescoring as ``benchmarks/index_bench.py`` times them (one thread, back to
  back). Of the ANN stage only HNSW's descent through its upper layers (measured alone: a 1-NN
  search at beam width 1) grows with ln N / ln N_cal; the bottom layer's beam at a fixed
  ``ef_search`` visits about as many nodes at 1M as at 20k once the graph is larger than its
  reach (measured: 0.46 ms at 20k, 0.44 at 100k, 0.49 at 1M × 512, int8 + rescoring). All of it
  ∝ D / D_cal (each visit is a D-wide distance); hydration constant; the measured
  single-client P95 is scaled by the resulting change of the mean service time. Below the
  calibration size the beam has not reached its plateau, so smaller collections are
  over-predicted;
* cores: the fewest (≥ 2) that keep utilisation ρ = QPS × service time / cores ≤ ``max_util``;
  P95 under load ≈ single-client P95 / (1 − ρ) (an M/M/1-style inflation, conservative for c > 1);
* disk = store (payload + SQLite vector copy) + 2 × index (a checkpoint writes the new
  generation before deleting the old one).

Not modelled: recall falling slowly with N at a fixed ef_search, and memory-bandwidth effects when
the index outgrows the CPU caches; both make large-N estimates optimistic, so rerun
``edgerag bench`` on the real box before committing.

Costs: every price is an input, a single value or a ``LOW-HIGH`` range; the defaults are the
product brief's assumptions (listed in :data:`ASSUMPTIONS`), not quotes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from edgerag.errors import ConfigError

logger = logging.getLogger(__name__)

PRECISIONS = ("f32", "int8", "binary")
CODE_BYTES_PER_DIM = {"f32": 4.0, "f16": 2.0, "int8": 1.0, "binary": 1 / 8}
GB = 1e9
DAYS_PER_MONTH = 30


class Range(NamedTuple):
    lo: float
    hi: float

    def __str__(self) -> str:
        return f"{self.lo:g}" if self.lo == self.hi else f"{self.lo:g}-{self.hi:g}"


def parse_range(text: str | float | Range, name: str = "value") -> Range:
    """``"3"`` → (3, 3); ``"0.08-0.15"`` → (0.08, 0.15). Negative or reversed ranges fail."""
    if isinstance(text, Range):
        return text
    if isinstance(text, int | float):
        return Range(float(text), float(text))
    lo_s, sep, hi_s = str(text).strip().partition("-")
    try:
        lo = float(lo_s)
        hi = float(hi_s) if sep else lo
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not a number or a LOW-HIGH range") from None
    if lo < 0 or hi < lo:
        raise ConfigError(f"{name}: {text!r} must be non-negative with LOW <= HIGH")
    return Range(lo, hi)


# Upload per query and modality (MB). Image: the brief's 25–50 MB per 4K image (raw frames; a
# JPEG is ~1–5 MB: change it); audio: 30 s of 16 kHz 16-bit mono ≈ 1 MB; text: ~2 KB.
MB_PER_QUERY = {
    "text": Range(0.002, 0.002),
    "image": Range(25, 50),
    "audio": Range(1, 1),
    "video": Range(25, 50),
}


@dataclass(frozen=True)
class Prices:
    """Cost inputs; defaults are the product brief's assumptions.

    Attributes:
        queries_per_day: per site.
        embed_usd_per_1k: cloud embedding API per 1,000 queries (brief: $900–2,400/month at
            10k queries/day → $3–8 per 1k).
        egress_usd_per_gb: cloud egress (brief: $0.08–0.15/GB).
        mb_per_query: upload per query, MB (default: sum over the query modalities).
        vectordb_usd_month: managed vector DB (brief: $800–3,000/month).
        edge_hw_usd: edge box price (brief: $300–600/month amortised over 3 years → $10,800–
            21,600; a 4-core/16 GB mini PC costs far less: put your quote here).
        amortize_months: hardware amortisation period.
        edge_ops_usd_month: operating the node (brief: $150–300/month).
    """

    queries_per_day: float = 10_000
    embed_usd_per_1k: Range = Range(3.0, 8.0)
    egress_usd_per_gb: Range = Range(0.08, 0.15)
    mb_per_query: Range = Range(25.0, 50.0)
    vectordb_usd_month: Range = Range(800.0, 3000.0)
    edge_hw_usd: Range = Range(10_800.0, 21_600.0)
    amortize_months: float = 36
    edge_ops_usd_month: Range = Range(150.0, 300.0)


ASSUMPTIONS = (
    "embedding API $3-8 per 1k queries (brief: $900-2,400/month at 10k/day)",
    "egress $0.08-0.15/GB; upload per query: text 2 KB, image 25-50 MB (4K frame), audio 1 MB",
    "managed vector DB $800-3,000/month",
    "edge hardware $10,800-21,600 amortised over 36 months ($300-600/month) + ops $150-300/month",
    "30 days per month",
)


def mb_for(modalities: tuple[str, ...]) -> Range:
    """Upload per query for a query that carries every listed modality."""
    bad = [m for m in modalities if m not in MB_PER_QUERY]
    if bad or not modalities:
        raise ConfigError(
            f"unknown modality {bad[0] if bad else ''!r}; choose from {sorted(MB_PER_QUERY)}"
        )
    return Range(
        sum(MB_PER_QUERY[m].lo for m in modalities), sum(MB_PER_QUERY[m].hi for m in modalities)
    )


# ------------------------------------------------------------------------------ calibration


@dataclass(frozen=True)
class PrecisionCal:
    """One precision measured at the calibration size (single client).

    ``rss_B_per_vec`` is anonymous resident memory per vector (slope of a two-size fit when
    :func:`calibrate` made it), without the mapped f32 originals.
    """

    rss_B_per_vec: float
    disk_B_per_vec: float
    store_B_per_item: float
    ann_ms: float  # per-stage means
    rescore_ms: float
    hydrate_ms: float
    e2e_mean_ms: float
    e2e_p95_ms: float
    recall: float
    rss_fixed_bytes: float = 0.0  # intercept of the two-size memory fit (not per vector)
    # HNSW's descent through its upper layers (a 1-NN search at beam width 1), part of ann_ms;
    # None in calibrations made before it was measured
    descent_ms: float | None = None


@dataclass(frozen=True)
class Calibration:
    n: int
    dim: int
    cores: int
    cpu: str
    precisions: dict[str, PrecisionCal] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        try:
            return cls(
                n=int(data["n"]),
                dim=int(data["dim"]),
                cores=int(data["cores"]),
                cpu=str(data["cpu"]),
                precisions={k: PrecisionCal(**v) for k, v in data["precisions"].items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"calibration data is malformed: {exc}") from exc

    @classmethod
    def load(cls, path: Path) -> Calibration:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read calibration: {exc}") from exc


def calibration_from_report(report: dict[str, Any]) -> Calibration:
    """Turn a bench report (one row per precision, concurrency 1) into a calibration."""
    src, rk = report["collection"], report["options"]["recall_k"]
    n = int(src["vectors"])
    precs = {}
    for row in report["targets"]:
        lv = next(x for x in row["levels"] if x["concurrency"] == 1)
        # anonymous memory: the mapped f32 originals are modelled separately (originals_cached)
        mem = row.get("anon_B_per_vec") or row["rss_B_per_vec"]
        # the index stages as benchmarks/index_bench.py times them (one thread, back to back),
        # which the model is checked against; older reports: the c=1 level's
        index = row.get("single_thread") or {
            "ann_ms": lv["ann"]["mean"],
            "rescore_ms": lv["rescore"]["mean"],
        }
        precs[row["index"].split("/")[1]] = PrecisionCal(
            rss_B_per_vec=mem,
            disk_B_per_vec=row["disk_B_per_vec"],
            store_B_per_item=src["store_bytes"] / n,
            ann_ms=index["ann_ms"],
            rescore_ms=index["rescore_ms"],
            descent_ms=index.get("descent_ms"),
            hydrate_ms=lv["hydrate"]["mean"],
            e2e_mean_ms=lv["e2e"]["mean"],
            e2e_p95_ms=lv["e2e"]["p95"],
            recall=row[f"recall@{rk}"],
        )
    m = report["machine"]
    return Calibration(
        n=n, dim=int(src["dim"]), cores=int(m["cores"]), cpu=str(m["cpu"]), precisions=precs
    )


def calibrate(dim: int, n: int = 20_000, queries: int = 300) -> Calibration:
    """Run the short calibration bench on this machine (about a minute on 2 busy cores).

    Memory per vector is the slope between the full calibration index and a tenth-size one,
    each reopened in a fresh process: a single reading would fold the index's fixed
    allocations into every vector and overstate memory at scale.

    The index stages are timed on an index of the same vectors built the way
    ``benchmarks/index_bench.py`` builds one (10,000-vector batches). The synthetic collection
    is written as 500-item documents, so its int8 ranges are first trained on 500 vectors and
    its first few thousand graph nodes are linked through those codes: at 20k it searches
    ~15 % slower (0.45 vs 0.39 ms, same process and queries), a share of the graph that
    vanishes in the large collections a plan is for.
    """
    from edgerag.bench.runner import BenchOptions, bench_synthetic

    opts = BenchOptions(
        queries=queries, concurrency=(1,), gate_concurrency=1, ef_sweep=(), warmup=30
    )
    report = bench_synthetic(n, dim, opts, quantizations=PRECISIONS)
    cal = calibration_from_report(report)
    precisions = {
        prec: replace(pc, **_index_stages(n, dim, prec, opts))
        for prec, pc in cal.precisions.items()
    }
    small = max(500, n // 10)
    if small >= n:
        return replace(cal, precisions=precisions)
    fitted = {}
    for prec, pc in precisions.items():
        per_small = _small_index_rss(small, dim, prec)
        slope = (pc.rss_B_per_vec * n - per_small * small) / (n - small)
        if not math.isfinite(slope) or slope <= 0:  # probe failed or noise: keep the reading
            fitted[prec] = pc
            continue
        fixed = max(0.0, (pc.rss_B_per_vec - slope) * n)
        fitted[prec] = replace(pc, rss_B_per_vec=round(slope, 1), rss_fixed_bytes=round(fixed))
    return replace(cal, precisions=fitted)


BUILD_BATCH = 10_000  # vectors per upsert, as benchmarks/index_bench.py builds


@contextmanager
def _direct_index(n: int, dim: int, precision: str, seed: int) -> Iterator[tuple[Any, np.ndarray]]:
    """A SpaceIndex of ``n`` clustered vectors (and the vectors), built in ``BUILD_BATCH``
    upserts in a temporary directory, checkpointed and reopened: as a server serves it after a
    start, and measurably faster than the build's own process state (100k: 0.34 vs 0.45 ms
    mean in ``index_bench.py``, raw faiss alike)."""
    import tempfile

    from edgerag.bench.synthetic import clustered, item_keys
    from edgerag.index.base import IndexConfig
    from edgerag.index.space import SpaceIndex
    from edgerag.types import SpaceSpec

    data = clustered(n, dim, seed=seed)
    spec, config = SpaceSpec("cal", "synthetic", "1", dim), IndexConfig(quantization=precision)
    with tempfile.TemporaryDirectory(prefix="edgerag-cal-") as tmp:
        index = SpaceIndex.open(Path(tmp), spec, config)
        try:
            for start in range(0, n, BUILD_BATCH):
                stop = min(n, start + BUILD_BATCH)
                index.upsert(item_keys(start, stop), data[start:stop])
            index.checkpoint(1)
        finally:
            index.close()
        index = SpaceIndex.open(Path(tmp), spec, config)
        try:
            yield index, data
        finally:
            index.close()


def _index_stages(n: int, dim: int, precision: str, opts: Any) -> dict[str, float]:
    """ANN, rescoring and HNSW-descent means on :func:`_direct_index` (the runner's queries)."""
    from edgerag.bench.runner import index_pass, instrumented
    from edgerag.bench.synthetic import perturb

    with _direct_index(n, dim, precision, seed=42) as (index, data):
        queries = perturb(data, opts.queries, opts.seed, opts.noise)
        with instrumented(index) as timed:
            for i in range(min(opts.warmup, len(queries))):
                index.search(queries[i : i + 1], 10)
            return index_pass(index, timed, queries, 10)


def _small_index_rss(n: int, dim: int, precision: str) -> float:
    from edgerag.bench.memory import index_memory
    from edgerag.bench.synthetic import perturb

    with _direct_index(n, dim, precision, seed=5) as (index, data):
        return float(index_memory(index, perturb(data, 50, seed=6))["anon_B_per_vec"])


def calibration_dim(dim: int) -> int:
    """Calibrate at the target dim, capped so the calibration run stays short."""
    return min(dim, 768)


# Bump when the calibration bench, the index defaults or what a Calibration holds change: a
# cached calibration of another version is stale and is measured again.
CALIBRATION_VERSION = 3  # 3: index stages timed on one thread, like index_bench


def machine_fingerprint() -> dict[str, Any]:
    """What a calibration depends on besides its size: CPU, cores, code and library versions."""
    import edgerag
    from edgerag.bench.runner import _machine

    m = _machine()
    versions = {}
    # distribution metadata, not imports: importing faiss alone costs ~0.7 s on a busy box
    for lib, dists in (("faiss", ("faiss-cpu", "faiss", "faiss-gpu")), ("numpy", ("numpy",))):
        versions[lib] = "-"  # an absent extra simply is not part of the key
        for dist in dists:
            try:
                versions[lib] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return {
        "calibration_version": CALIBRATION_VERSION,
        "edgerag": edgerag.__version__,
        "cpu": m["cpu"],
        "cores": m["cores"],
        **versions,
    }


def default_cache_dir() -> Path:
    """``$EDGERAG_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgerag``, else ``~/.cache/edgerag``."""
    if os.environ.get("EDGERAG_CACHE_DIR"):
        return Path(os.environ["EDGERAG_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgerag"


def calibration_cache_path(dim: int, n: int, cache_dir: Path | None = None) -> Path:
    """Where the calibration for (dim, n) on this machine and code version is cached."""
    key = json.dumps(machine_fingerprint(), sort_keys=True).encode()
    digest = hashlib.sha256(key).hexdigest()[:12]
    return (cache_dir or default_cache_dir()) / f"plan-calibration-d{dim}-n{n}-{digest}.json"


def cached_calibration(
    dim: int, n: int = 20_000, cache_dir: Path | None = None, refresh: bool = False
) -> tuple[Calibration, Path, bool]:
    """The calibration for (dim, n) from the cache, measured (and cached) when absent.

    Returns (calibration, cache file, True when it was read from the cache). The cache key is
    the machine fingerprint (CPU, cores, edgerag/faiss/numpy versions, calibration version),
    so a new box or an upgrade recalibrates; ``refresh`` forces it. An unreadable cache file
    is measured over, never trusted.
    """
    path = calibration_cache_path(dim, n, cache_dir)
    if not refresh and path.exists():
        try:
            return Calibration.load(path), path, True
        except ConfigError as exc:
            logger.warning("ignoring the cached calibration: %s", exc)
    cal = calibrate(dim, n=n)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(cal.to_json())
        os.replace(tmp, path)  # a concurrent reader sees the old file or the whole new one
    except OSError as exc:  # a read-only home must not fail the plan itself
        logger.warning("cannot cache the calibration at %s: %s", path, exc)
    return cal, path, False


# ------------------------------------------------------------------------------ dimensioning


@dataclass(frozen=True)
class Sizing:
    precision: str
    index_ram_gb: float
    ram_gb: int
    cores: int
    disk_gb: float
    p95_single_ms: float
    p95_load_ms: float
    utilisation: float
    recall_cal: float
    passed: bool
    mb_per_million: float


@dataclass(frozen=True)
class PlanInputs:
    vectors: int
    dim: int
    qps: float = 10.0
    p95_budget_ms: float = 50.0
    base_ram_gb: float = 0.5
    originals_cached: float = 0.1
    headroom: float = 1.3
    max_util: float = 0.5

    def __post_init__(self) -> None:
        if self.vectors < 1 or self.dim < 2:
            raise ConfigError("--vectors must be >= 1 and --dim >= 2")
        if self.qps <= 0 or self.p95_budget_ms <= 0:
            raise ConfigError("--qps and --p95-ms must be > 0")
        if not 0 <= self.originals_cached <= 1 or not 0 < self.max_util < 1:
            raise ConfigError("originals_cached must be in [0, 1] and max_util in (0, 1)")


def _pow2_gb(gb: float) -> int:
    return int(2 ** max(0, math.ceil(math.log2(max(gb, 1.0)))))


def predict_index_ms(cal: Calibration, precision: str, n: int, dim: int) -> float:
    """Mean single-client index time (ANN + rescoring, no payload) the model predicts at
    ``n`` × ``dim``: HNSW's descent ∝ ln N, the bottom layer's beam fixed, all ∝ D (see the
    module docstring). A calibration without a measured descent scales all of ANN with ln N.

    ``benchmarks/index_bench.py --plan-check`` compares it with a measured run.
    """
    pc = cal.precisions[precision]
    dim_f = dim / cal.dim
    log_f = math.log(max(n, 2)) / math.log(max(cal.n, 2))
    descent = pc.ann_ms if pc.descent_ms is None else min(pc.descent_ms, pc.ann_ms)
    ann = pc.ann_ms - descent + descent * log_f
    return (ann + pc.rescore_ms) * dim_f


def size(inputs: PlanInputs, cal: Calibration, precision: str) -> Sizing:
    """Dimension one precision from the calibration (see the module docstring for the model)."""
    if precision not in cal.precisions:
        raise ConfigError(f"calibration has no {precision!r} measurement")
    pc = cal.precisions[precision]
    n, d = inputs.vectors, inputs.dim
    code = CODE_BYTES_PER_DIM[precision]
    overhead = max(0.0, pc.rss_B_per_vec - code * cal.dim)
    per_vec = code * d + overhead
    index_ram = n * per_vec
    originals = 4.0 * d * n
    ram = (index_ram + inputs.originals_cached * originals) * inputs.headroom
    ram += inputs.base_ram_gb * GB + pc.rss_fixed_bytes
    disk_index = max(0.0, pc.disk_B_per_vec - (code + 4.0) * cal.dim) + (code + 4.0) * d
    store = max(0.0, pc.store_B_per_item - 4.0 * cal.dim) + 4.0 * d
    disk = n * (store + 2 * disk_index)
    mean = predict_index_ms(cal, precision, n, d) + pc.hydrate_ms
    stages = pc.ann_ms + pc.rescore_ms + pc.hydrate_ms
    scale = mean / stages if stages > 0 else 1.0
    p95 = pc.e2e_p95_ms * scale
    service_s = pc.e2e_mean_ms * scale / 1e3
    cores = max(2, math.ceil(inputs.qps * service_s / inputs.max_util))
    util = inputs.qps * service_s / cores
    p95_load = p95 / (1 - util)
    return Sizing(
        precision=precision,
        index_ram_gb=index_ram / GB,
        ram_gb=_pow2_gb(ram / GB),
        cores=cores,
        disk_gb=disk / GB,
        p95_single_ms=p95,
        p95_load_ms=p95_load,
        utilisation=util,
        recall_cal=pc.recall,
        passed=p95_load <= inputs.p95_budget_ms,
        mb_per_million=per_vec,  # bytes/vector == MB per million vectors
    )


# ------------------------------------------------------------------------------ cost


@dataclass(frozen=True)
class Costs:
    """Monthly USD per site, (low, high) from all-low and all-high prices."""

    embed: Range
    egress: Range
    vectordb: Range
    cloud_total: Range
    edge_hw: Range
    edge_ops: Range
    edge_total: Range
    breakeven_qpd_api_only: Range  # edge total vs embedding + egress only
    breakeven_qpd_with_db: Range  # edge total vs embedding + egress + managed DB


def costs(p: Prices) -> Costs:
    """Monthly cost model; see :class:`Prices` for the inputs."""
    if p.queries_per_day < 0 or p.amortize_months <= 0:
        raise ConfigError("queries per day must be >= 0 and amortisation months > 0")
    q_month = p.queries_per_day * DAYS_PER_MONTH

    def per_query(i: int) -> float:
        return p.embed_usd_per_1k[i] / 1000 + p.mb_per_query[i] / 1000 * p.egress_usd_per_gb[i]

    embed = Range(*(q_month * p.embed_usd_per_1k[i] / 1000 for i in (0, 1)))
    egress = Range(*(q_month * p.mb_per_query[i] / 1000 * p.egress_usd_per_gb[i] for i in (0, 1)))
    cloud = Range(*(embed[i] + egress[i] + p.vectordb_usd_month[i] for i in (0, 1)))
    hw = Range(*(p.edge_hw_usd[i] / p.amortize_months for i in (0, 1)))
    edge = Range(*(hw[i] + p.edge_ops_usd_month[i] for i in (0, 1)))

    def breakeven(fixed_cloud: Range) -> Range:
        vals = []
        for i in (0, 1):
            pq = per_query(i)
            gap = max(0.0, edge[i] - fixed_cloud[i])
            vals.append(
                math.inf if pq == 0 and gap > 0 else (gap / (DAYS_PER_MONTH * pq) if pq else 0.0)
            )
        return Range(min(vals), max(vals))

    return Costs(
        embed,
        egress,
        p.vectordb_usd_month,
        cloud,
        hw,
        p.edge_ops_usd_month,
        edge,
        breakeven(Range(0.0, 0.0)),
        breakeven(p.vectordb_usd_month),
    )


# ------------------------------------------------------------------------------ output


def plan(
    inputs: PlanInputs, cal: Calibration, prices: Prices, precisions: tuple[str, ...] = PRECISIONS
) -> dict[str, Any]:
    sizing = [size(inputs, cal, p) for p in precisions if p in cal.precisions]
    return {
        "inputs": asdict(inputs),
        "calibration": {"n": cal.n, "dim": cal.dim, "cores": cal.cores, "cpu": cal.cpu},
        "sizing": [asdict(s) for s in sizing],
        "prices": {k: (str(v) if isinstance(v, Range) else v) for k, v in asdict(prices).items()},
        "costs": {k: list(v) for k, v in asdict(costs(prices)).items()},
        "assumptions": list(ASSUMPTIONS),
    }


def _usd(r: list[float] | Range) -> str:
    lo, hi = r
    if math.isinf(hi):
        return "never"
    return f"${lo:,.0f}" if round(lo) == round(hi) else f"${lo:,.0f}–{hi:,.0f}"


def _qpd(r: list[float] | Range) -> str:
    lo, hi = r

    def fmt(x: float) -> str:
        return "never" if math.isinf(x) else f"{x:,.0f}"

    return fmt(lo) if round(lo) == round(hi) else f"{fmt(lo)}–{fmt(hi)}"


def render(result: dict[str, Any]) -> str:
    """Human-readable plan: a sizing table (markdown) and the monthly cost comparison."""
    i, c = result["inputs"], result["calibration"]
    lines = [
        f"plan for {i['vectors']:,} vectors × {i['dim']} at {i['qps']:g} QPS, P95 budget "
        f"{i['p95_budget_ms']:g} ms (calibrated on {c['n']:,} × {c['dim']} here: {c['cores']} "
        f"cores, {c['cpu']})",
        "",
        "| precision | index RAM GB | MB / 1M vectors | RAM GB | cores | disk GB "
        "| P95 ms (1 client) | P95 ms at QPS | util | recall@10 (calib.) | budget |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["sizing"]:
        lines.append(
            f"| {s['precision']} | {s['index_ram_gb']:.2f} | {s['mb_per_million']:,.0f} | "
            f"{s['ram_gb']} | {s['cores']} | {s['disk_gb']:.1f} | {s['p95_single_ms']:.2f} | "
            f"{s['p95_load_ms']:.2f} | {s['utilisation']:.2f} | {s['recall_cal']:.3f} | "
            f"{'PASS' if s['passed'] else 'FAIL'} |"
        )
    k = result["costs"]
    p = result["prices"]
    lines += [
        "",
        f"monthly cost per site at {p['queries_per_day']:,.0f} queries/day "
        f"({p['mb_per_query']} MB uploaded per query):",
        "| item | USD / month |",
        "|---|---|",
        f"| cloud: embedding API | {_usd(k['embed'])} |",
        f"| cloud: egress | {_usd(k['egress'])} |",
        f"| cloud: managed vector DB | {_usd(k['vectordb'])} |",
        f"| **cloud total** | **{_usd(k['cloud_total'])}** |",
        f"| edge: hardware ({p['amortize_months']:g}-month amortisation) | {_usd(k['edge_hw'])} |",
        f"| edge: operations | {_usd(k['edge_ops'])} |",
        f"| **edge total** | **{_usd(k['edge_total'])}** |",
        "",
        f"break-even (queries/day/site): {_qpd(k['breakeven_qpd_with_db'])} counting the "
        f"managed vector DB, {_qpd(k['breakeven_qpd_api_only'])} against the per-query API "
        "costs alone",
        "assumptions (all inputs; see `edgerag plan --help`): " + "; ".join(result["assumptions"]),
    ]
    return "\n".join(lines)
