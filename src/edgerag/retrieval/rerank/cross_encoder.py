"""Cross-encoder reranker for ONNX weights a user provides (e.g. an exported ms-marco MiniLM).

No cross-encoder ships anywhere this project can fetch offline, so this loader is never the
default; quality needs real weights. It runs with onnxruntime + tokenizers (extra ``onnx``), no
torch. The model takes ``input_ids``/``attention_mask`` (and ``token_type_ids`` if it declares
it) for (query, passage) pairs and returns one relevance logit per pair (shape ``(n,)``,
``(n, 1)``, or ``(n, 2)`` whose last column is the "relevant" class).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgerag._optional import require
from edgerag.encoders.onnx_session import session_options
from edgerag.errors import ConfigError, EncoderError
from edgerag.retrieval.rerank.base import Reranker, apply_scores
from edgerag.types import Hit

if TYPE_CHECKING:
    from edgerag.engine import Engine

logger = logging.getLogger(__name__)


class CrossEncoderReranker(Reranker):
    """Scores (query, passage) pairs jointly with an ONNX cross-encoder.

    Args:
        model_path: the ``.onnx`` file.
        tokenizer_path: its ``tokenizer.json`` (default: next to the model).
        top_n: candidates scored.
        max_length: tokens per pair (longer passages are truncated).
        batch_size: pairs per inference call.
        budget_ms: stop scoring new batches once this much time has passed; unscored hits keep
            their retrieval order after the scored ones. ``None`` = no budget.
        threads: onnxruntime intra-op threads.
    """

    name = "cross-encoder"

    def __init__(
        self,
        model_path: str | Path,
        tokenizer_path: str | Path | None = None,
        top_n: int = 20,
        max_length: int = 256,
        batch_size: int = 8,
        budget_ms: float | None = None,
        threads: int | None = None,
    ) -> None:
        ort = require("onnxruntime")
        tokenizers = require("tokenizers")
        model_path = Path(model_path)
        tokenizer_path = Path(tokenizer_path or model_path.with_name("tokenizer.json"))
        for path, what in ((model_path, "cross-encoder model"), (tokenizer_path, "tokenizer")):
            if not path.is_file():
                raise ConfigError(f"{what} file {str(path)!r} does not exist")
        try:
            self._session = ort.InferenceSession(
                str(model_path), session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises untyped errors for bad files
            raise ConfigError(f"{model_path}: not a loadable ONNX model: {exc}") from exc
        self._inputs = {i.name for i in self._session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._inputs
        if missing:
            raise ConfigError(f"{model_path}: model lacks inputs {sorted(missing)}")
        self._tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length)
        self.top_n = top_n
        self.batch_size = batch_size
        self.budget_ms = budget_ms

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """Relevance logits of ``(query, passage)`` pairs, one per passage."""
        if not passages:
            return np.zeros(0, dtype=np.float32)
        encodings = self._tokenizer.encode_batch([(query, p) for p in passages])
        width = max(len(e.ids) for e in encodings)
        feeds: dict[str, np.ndarray] = {
            "input_ids": np.zeros((len(encodings), width), dtype=np.int64),
            "attention_mask": np.zeros((len(encodings), width), dtype=np.int64),
        }
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            feeds["input_ids"][row, :n] = enc.ids
            feeds["attention_mask"][row, :n] = 1
            types[row, :n] = enc.type_ids
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = types
        try:
            out = np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)
        except Exception as exc:  # onnxruntime raises untyped errors
            raise EncoderError(f"cross-encoder failed: {exc}") from exc
        return _logits(out, len(passages))

    def rerank(
        self,
        query: str,
        hits: Sequence[Hit],
        engine: Engine | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        head, tail = list(hits[: self.top_n]), list(hits[self.top_n :])
        scores: list[float | None] = [None] * len(head)
        start = time.perf_counter()
        for lo in range(0, len(head), self.batch_size):
            elapsed = (time.perf_counter() - start) * 1000
            if self.budget_ms is not None and lo and elapsed > self.budget_ms:
                logger.info("cross-encoder budget %.0f ms spent after %d hits", self.budget_ms, lo)
                break
            batch = head[lo : lo + self.batch_size]
            for i, s in enumerate(self.score(query, [h.text for h in batch])):
                scores[lo + i] = float(s)
        return apply_scores(head, scores, "cross_encoder") + tail


def _logits(out: Any, n: int) -> np.ndarray:
    if out.ndim == 2 and out.shape[1] >= 1:
        out = out[:, -1]
    if out.shape != (n,):
        raise EncoderError(f"cross-encoder returned shape {out.shape}, expected ({n},) logits")
    return out
