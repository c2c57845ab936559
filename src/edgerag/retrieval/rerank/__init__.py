"""Rerankers behind one protocol: bi-encoder + BM25 by default, an ONNX cross-encoder for
weights a user provides."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgerag.retrieval.rerank.base import Reranker
from edgerag.retrieval.rerank.hybrid import HybridReranker

if TYPE_CHECKING:
    from edgerag.retrieval.rerank.cross_encoder import CrossEncoderReranker

__all__ = ["CrossEncoderReranker", "HybridReranker", "Reranker"]


def __getattr__(name: str) -> Any:
    if name == "CrossEncoderReranker":  # lazy: needs onnxruntime + tokenizers
        from edgerag.retrieval.rerank.cross_encoder import CrossEncoderReranker

        return CrossEncoderReranker
    raise AttributeError(name)
