"""Video: sample frames at a fixed rate and collapse near-identical neighbours (PyAV).

Frames are decoded in order and one is kept per ``1/fps`` seconds of presentation time. A
sampled frame is compared with the previous kept one on a 32×32 grey thumbnail: when the share
of cells that changed by more than 10 % grey is below ``dedup_threshold`` (0–1) it is merged
into it, so a static slide or a camera on a tripod becomes one frame item spanning its whole
time range instead of dozens of copies. Counting changed cells rather than averaging the
difference keeps small but meaningful changes (a new label on the same background) apart,
while encoder noise, which touches many cells a little, stays below the cell threshold.
The audio track goes through :mod:`edgerag.ingest.extract.audio`.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgerag._optional import require
from edgerag.errors import InputError, InputTooLargeError
from edgerag.ingest.extract.image import check_pixels
from edgerag.ingest.extract.reasons import av_reason
from edgerag.ingest.limits import Limits

logger = logging.getLogger(__name__)

VIDEO_MIMES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
}
DEDUP_THRESHOLD = 0.01
_SIGNATURE_SIDE = 32
_CELL_CHANGE = 0.1


@dataclass
class Frame:
    """A kept video frame: RGB image, the time range it stands for, and its sample index."""

    image: Any
    t_start: float
    t_end: float
    index: int


@dataclass
class DecodedVideo:
    frames: list[Frame]
    duration: float
    metadata: dict[str, Any]


def sample_frames(
    source: str,
    data: bytes,
    limits: Limits,
    fps: float = 1.0,
    dedup_threshold: float = DEDUP_THRESHOLD,
) -> DecodedVideo:
    """Frames of the first video stream at ``fps``, near-duplicates merged.

    Raises:
        InputError: Empty, corrupt, no video stream, or a codec FFmpeg cannot decode.
        InputTooLargeError: Longer than ``limits.max_video_seconds``, frames over
            ``limits.max_pixels``, or more than ``limits.max_frames`` distinct frames.
    """
    av = require("av")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if not data:
        raise InputError(source, "empty file (0 bytes)")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except Exception as exc:
        raise InputError(source, f"not a readable video file ({_reason(exc)})") from exc
    with container:
        if not container.streams.video:
            raise InputError(source, "no video stream in the file")
        stream = container.streams.video[0]
        meta = _check_header(source, container, stream, limits)
        stream.thread_type = "AUTO"
        frames, last_t = _collect(source, container, stream, limits, fps, dedup_threshold)
    if not frames:
        raise InputError(source, "no video frame could be decoded (truncated or corrupt file)")
    declared = meta.get("declared_duration") or 0.0
    if declared > 2.0 and last_t + 1.0 < 0.8 * declared:
        raise InputError(
            source,
            f"truncated video: the header declares {declared:.1f} s but frames stop at "
            f"{last_t:.1f} s",
        )
    duration = max(declared, last_t)
    frames[-1].t_end = round(max(frames[-1].t_end, min(duration, last_t + 1.0 / fps)), 3)
    meta.update(duration=round(duration, 3), frames_kept=len(frames), sample_fps=fps)
    return DecodedVideo(frames, duration, meta)


def _check_header(source: str, container: Any, stream: Any, limits: Limits) -> dict[str, Any]:
    ctx = stream.codec_context
    try:
        codec = str(ctx.name or "")
    except Exception:
        codec = ""
    if not codec or codec == "none":
        raise InputError(source, "unsupported video codec (FFmpeg has no decoder for it)")
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width and height:
        check_pixels(source, (width, height), limits)
    declared = None
    if stream.duration is not None and stream.time_base is not None:
        declared = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        declared = float(container.duration) / 1_000_000
    if declared and declared > limits.max_video_seconds:
        raise InputTooLargeError(
            source,
            f"video is {declared / 60:.1f} min long, over the "
            f"{limits.max_video_seconds / 60:.0f} min limit (Limits.max_video_seconds)",
        )
    rate = stream.average_rate
    return {
        "codec": codec,
        "width": width,
        "height": height,
        "fps": round(float(rate), 3) if rate else None,
        "declared_duration": round(declared, 3) if declared else None,
        "has_audio": bool(container.streams.audio),
    }


def _collect(
    source: str,
    container: Any,
    stream: Any,
    limits: Limits,
    fps: float,
    threshold: float,
) -> tuple[list[Frame], float]:
    frames: list[Frame] = []
    last_sig: np.ndarray | None = None
    next_t = 0.0
    last_t = 0.0
    sample_index = 0
    try:
        for frame in container.decode(stream):
            t = _frame_time(frame, stream, last_t)
            last_t = max(last_t, t)
            if t + 1e-6 < next_t:
                continue
            next_t = float((np.floor(t * fps + 1e-6) + 1) / fps)
            image = frame.to_image()  # PIL RGB
            sig = _signature(image)
            if frames and last_sig is not None and changed_share(sig, last_sig) < threshold:
                frames[-1].t_end = round(next_t, 3)  # same picture: extend its time range
            else:
                frames.append(Frame(image, round(t, 3), round(next_t, 3), sample_index))
                last_sig = sig
                if len(frames) > limits.max_frames:
                    raise InputTooLargeError(
                        source,
                        f"more than {limits.max_frames:,} distinct frames at {fps:g} fps "
                        "(Limits.max_frames)",
                    )
            sample_index += 1
    except InputError:
        raise
    except Exception as exc:
        if not frames:
            raise InputError(source, f"corrupt or unsupported video ({_reason(exc)})") from exc
        logger.warning(
            "%s: video decoding stopped early at %.1f s: %s", source, last_t, _reason(exc)
        )
    return frames, last_t


def _frame_time(frame: Any, stream: Any, previous: float) -> float:
    if frame.time is not None:
        return float(frame.time)
    if frame.pts is not None and stream.time_base is not None:
        return float(frame.pts * stream.time_base)
    return previous


def changed_share(a: np.ndarray, b: np.ndarray) -> float:
    """Share of thumbnail cells whose grey level changed by more than 10 %."""
    return float((np.abs(a - b) > _CELL_CHANGE).mean())


def _signature(image: Any) -> np.ndarray:
    """A 32×32 grey thumbnail in [0, 1]: a cheap perceptual fingerprint for de-duplication."""
    small = image.convert("L").resize((_SIGNATURE_SIDE, _SIGNATURE_SIDE))
    return np.asarray(small, dtype=np.float32) / 255.0


def _reason(exc: Exception) -> str:
    return av_reason(exc)
