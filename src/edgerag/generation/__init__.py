"""Answer generators behind one protocol (:class:`Generator`).

* :class:`ExtractiveGenerator`: the offline default; picks and cites the sentences that answer.
* :class:`OpenAICompatGenerator`: any OpenAI-compatible ``/v1/chat/completions`` endpoint
  (llama.cpp server, Ollama, vLLM, OpenAI) over httpx, with SSE streaming (extra ``llm``).
* :class:`LlamaCppGenerator`: in-process llama.cpp (extra ``llamacpp``).

The HTTP and llama.cpp generators import their dependencies lazily, on construction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgerag.generation.base import Generator
from edgerag.generation.extractive import NOT_FOUND, ExtractiveGenerator
from edgerag.generation.prompts import SYSTEM_PROMPT, Prompt, PromptBuilder

if TYPE_CHECKING:
    from edgerag.generation.llamacpp import LlamaCppGenerator
    from edgerag.generation.openai_compat import OpenAICompatGenerator

__all__ = [
    "NOT_FOUND",
    "SYSTEM_PROMPT",
    "ExtractiveGenerator",
    "Generator",
    "LlamaCppGenerator",
    "OpenAICompatGenerator",
    "Prompt",
    "PromptBuilder",
]


def __getattr__(name: str) -> Any:
    # Lazy: importing edgerag.generation must not need httpx or llama_cpp.
    if name == "OpenAICompatGenerator":
        from edgerag.generation.openai_compat import OpenAICompatGenerator

        return OpenAICompatGenerator
    if name == "LlamaCppGenerator":
        from edgerag.generation.llamacpp import LlamaCppGenerator

        return LlamaCppGenerator
    raise AttributeError(name)
