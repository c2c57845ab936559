"""The generator contract: a built prompt in, answer text out (whole, or streamed as tokens).

Every generator sees the same :class:`~edgerag.generation.prompts.Prompt`: chat messages for
models, plus the question and the numbered sources for generators that work on them directly
(the extractive answerer). Answers cite sources as ``[n]``; citations are derived from those
markers afterwards, in one place (:mod:`edgerag.answer`), so every generator is held to the same
grounding rule.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgerag.generation.prompts import Prompt

logger = logging.getLogger(__name__)


class Generator(ABC):
    """Turns a prompt into an answer.

    Attributes:
        name: shown in answers, e.g. "extractive", "openai:<model>", "llamacpp".
    """

    name: str = "generator"

    @abstractmethod
    def generate(self, prompt: Prompt) -> str:
        """Return the whole answer; raise GenerationError/UpstreamError on failure."""

    @abstractmethod
    def stream(self, prompt: Prompt) -> Iterator[str]:
        """Yield the answer piece by piece (token deltas); joining them gives ``generate``."""

    def close(self) -> None:  # noqa: B027 (optional hook, most generators hold nothing)
        """Release connections/models."""
