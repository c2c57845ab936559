"""In-process llama.cpp through ``llama-cpp-python`` (extra ``llamacpp``).

llama-cpp-python has no wheel for this platform and compiles from source (~30 min on two
cores), so it is never a default: the import happens on construction and a missing package
raises :class:`~edgerag.errors.MissingExtraError` naming the extra.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgerag.errors import ConfigError, GenerationError, MissingExtraError
from edgerag.generation.base import Generator
from edgerag.generation.prompts import Prompt

logger = logging.getLogger(__name__)


def _import_llama() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise MissingExtraError("llama_cpp", "llamacpp", "in-process llama.cpp answers") from exc
    return llama_cpp


class LlamaCppGenerator(Generator):
    """Answers from a local GGUF model loaded in this process.

    Args:
        model_path: the ``.gguf`` file.
        n_ctx: context window in tokens.
        threads: CPU threads (default: all cores).
        max_tokens / temperature: sampling options.
        llama: an already constructed ``llama_cpp.Llama`` (shares one model between engines).
    """

    name = "llamacpp"

    def __init__(
        self,
        model_path: str | Path | None = None,
        n_ctx: int = 4096,
        threads: int | None = None,
        max_tokens: int = 512,
        temperature: float = 0.1,
        llama: Any | None = None,
    ) -> None:
        self.max_tokens = max_tokens
        self.temperature = temperature
        if llama is not None:
            self._llm = llama
            return
        llama_cpp = _import_llama()
        if model_path is None or not Path(model_path).is_file():
            raise ConfigError(f"llama.cpp model file {model_path!r} does not exist")
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(model_path),
                n_ctx=n_ctx,
                n_threads=threads or os.cpu_count() or 1,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise GenerationError(f"llama.cpp could not load {model_path}: {exc}") from exc

    def _call(self, prompt: Prompt, stream: bool) -> Any:
        try:
            return self._llm.create_chat_completion(
                messages=prompt.messages,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                stream=stream,
            )
        except (ValueError, RuntimeError) as exc:
            raise GenerationError(f"llama.cpp generation failed: {exc}") from exc

    def generate(self, prompt: Prompt) -> str:
        reply = self._call(prompt, stream=False)
        return str(reply["choices"][0]["message"].get("content") or "")

    def stream(self, prompt: Prompt) -> Iterator[str]:
        for chunk in self._call(prompt, stream=True):
            piece = chunk["choices"][0].get("delta", {}).get("content")
            if piece:
                yield piece
