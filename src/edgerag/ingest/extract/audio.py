"""Audio: decode any container/codec FFmpeg knows (PyAV) to 16 kHz mono, and cut timed windows.

PyAV ships FFmpeg inside its wheel, so wav/mp3/flac/ogg/m4a (and the audio track of a video)
decode in-process without the ffmpeg CLI. Durations are checked against ``Limits`` from the
header before decoding and again while decoding (a header can lie). A file whose header promises
much more audio than it holds is reported as truncated rather than silently shortened.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgerag._optional import require
from edgerag.errors import InputError, InputTooLargeError
from edgerag.ingest.extract.reasons import av_reason
from edgerag.ingest.limits import Limits

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
# Peak below this (≈ -80 dBFS) counts as silence: dither and DC offsets sit around here.
SILENCE_PEAK = 1e-4
# Decoded audio shorter than this share of the header's duration = truncated file.
TRUNCATED_RATIO = 0.8

AUDIO_MIMES = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".m4a": "audio/mp4",
}


@dataclass
class DecodedAudio:
    """16 kHz mono float32 samples in [-1, 1] and facts about the source stream."""

    samples: np.ndarray
    duration: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def peak(self) -> float:
        return float(np.abs(self.samples).max()) if self.samples.size else 0.0


def decode_audio(source: str, data: bytes, limits: Limits, *, what: str = "audio") -> DecodedAudio:
    """Decode the first audio stream of ``data`` to 16 kHz mono.

    Args:
        source: Name of the input, for error messages.
        data: File bytes (any container FFmpeg reads: wav, mp3, flac, ogg, m4a, mp4, webm, mkv).
        limits: ``max_audio_seconds`` is enforced before and during decoding.
        what: Word used in messages ("audio" or "audio track").

    Raises:
        InputError: Empty, corrupt, truncated, no audio stream, or a codec FFmpeg cannot decode.
        InputTooLargeError: Longer than ``limits.max_audio_seconds``.
    """
    av = require("av")
    if not data:
        raise InputError(source, "empty file (0 bytes)")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except Exception as exc:  # av.FFmpegError subclasses, or ValueError for garbage
        raise InputError(source, f"not a readable {what} file ({_reason(exc)})") from exc
    with container:
        if not container.streams.audio:
            raise InputError(source, f"no {what} stream in the file")
        stream = container.streams.audio[0]
        declared = _declared_seconds(container, stream)
        if declared and declared > limits.max_audio_seconds:
            raise _too_long(source, declared, limits, what)
        meta = _stream_metadata(stream, declared)
        samples = _decode_stream(source, container, stream, limits, what, av)
    duration = len(samples) / SAMPLE_RATE
    if duration == 0:
        raise InputError(source, f"no {what} could be decoded (truncated or corrupt file)")
    declared = _wav_declared_seconds(data, meta) or declared
    if declared and declared > 2.0 and duration < TRUNCATED_RATIO * declared:
        raise InputError(
            source,
            f"truncated {what}: the header declares {declared:.1f} s but only {duration:.1f} s "
            "decode",
        )
    meta["duration"] = round(duration, 3)
    return DecodedAudio(samples, duration, meta)


def _decode_stream(
    source: str, container: Any, stream: Any, limits: Limits, what: str, av: Any
) -> np.ndarray:
    codec = _codec_name(stream)
    if codec in ("none", ""):
        raise InputError(source, f"unsupported {what} codec (FFmpeg has no decoder for it)")
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    max_samples = int(limits.max_audio_seconds * SAMPLE_RATE)
    try:
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunk = out.to_ndarray().reshape(-1)
                chunks.append(chunk)
                total += len(chunk)
            if total > max_samples:
                raise _too_long(source, total / SAMPLE_RATE, limits, what)
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    except InputError:
        raise
    except Exception as exc:
        if not chunks:
            raise InputError(
                source, f"corrupt or unsupported {what} ({codec}: {_reason(exc)})"
            ) from exc
        # A damaged tail after good audio: keep what decoded (FFmpeg's own behaviour).
        logger.warning("%s: %s decoding stopped early: %s", source, what, _reason(exc))
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)


def _codec_name(stream: Any) -> str:
    try:
        return str(stream.codec_context.name or "")
    except Exception:  # PyAV raises when no decoder exists for the stream's codec
        return "none"


def _declared_seconds(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / 1_000_000  # AV_TIME_BASE
    return None


def _wav_declared_seconds(data: bytes, meta: dict[str, Any]) -> float | None:
    """Duration promised by a WAV's ``data`` chunk header.

    FFmpeg clamps a WAV's data size to the bytes present, so a cut file looks complete to it;
    the header still tells. (Ogg and MP3 carry no total length: a cut one decodes as shorter.)
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    block_align = 0
    rate = 0
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if kind == b"fmt " and pos + 24 <= len(data):
            rate = int.from_bytes(data[pos + 12 : pos + 16], "little")
            block_align = int.from_bytes(data[pos + 20 : pos + 22], "little")
        elif kind == b"data":
            if size in (0, 0xFFFFFFFF) or not block_align or not rate:
                return None  # streamed WAVs write 0 or -1 here: length unknown
            return size / block_align / rate
        pos += 8 + size + (size & 1)
    return None


def _stream_metadata(stream: Any, declared: float | None) -> dict[str, Any]:
    ctx = stream.codec_context
    return {
        "codec": _codec_name(stream),
        "sample_rate": int(getattr(ctx, "sample_rate", 0) or 0),
        "channels": int(getattr(ctx, "channels", 0) or 0),
        "declared_duration": round(declared, 3) if declared else None,
    }


def _too_long(source: str, seconds: float, limits: Limits, what: str) -> InputTooLargeError:
    return InputTooLargeError(
        source,
        f"{what} is {seconds / 60:.1f} min long, over the {limits.max_audio_seconds / 60:.0f} "
        "min limit (Limits.max_audio_seconds)",
    )


def _reason(exc: Exception) -> str:
    return av_reason(exc)


def check_not_silent(source: str, audio: DecodedAudio, what: str = "audio") -> None:
    """Raise :class:`InputError` when every sample is (near) zero."""
    if audio.peak == 0.0:
        raise InputError(source, f"silent {what}: every sample is zero")
    if audio.peak < SILENCE_PEAK:
        raise InputError(source, f"silent {what}: peak level {20 * np.log10(audio.peak):.0f} dBFS")


@dataclass(frozen=True)
class Window:
    """A time window of a recording and the words spoken in it."""

    t_start: float
    t_end: float
    words: tuple[Any, ...]


def window_words(
    words: Sequence[Any], duration: float, window_s: float = 5.0, overlap_s: float = 1.0
) -> list[Window]:
    """Assign timed words to overlapping windows; windows without speech are dropped.

    A word belongs to every window that contains its midpoint, so a word said in an overlap
    appears in both neighbours, as a phrase cut at a window edge would in a per-window run.
    """
    if window_s <= 0 or not 0 <= overlap_s < window_s:
        raise ValueError(
            f"need window_s > 0 and 0 <= overlap_s < window_s (got {window_s}, {overlap_s})"
        )
    step = window_s - overlap_s
    # Clamped: Whisper's last word can end a few ms past the decoded duration.
    mids = np.array([min((w.start + w.end) / 2, max(duration - 1e-3, 0.0)) for w in words])
    out = []
    start = 0.0
    while start < duration or (start == 0.0 and duration == 0.0):
        end = start + window_s
        inside = [w for w, m in zip(words, mids, strict=True) if start <= m < end]
        if inside:
            out.append(Window(round(start, 3), round(min(end, duration), 3), tuple(inside)))
        if end >= duration:
            break
        start += step
    return out
