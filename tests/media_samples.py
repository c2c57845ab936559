"""Real media files made on the fly for the media tests (Pillow, espeak-ng + sox, PyAV)."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def font(size: int):  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    try:
        return ImageFont.truetype(FONT, size)
    except OSError:
        return ImageFont.load_default(size)


def painted_text(text: str, size: tuple[int, int] = (900, 260), fmt: str = "PNG") -> bytes:
    """An image whose only content is ``text`` painted in black on white."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", size, "white")
    ImageDraw.Draw(im).text((30, size[1] // 2 - 30), text, fill="black", font=font(44))
    return encode(im, fmt)


def encode(image, fmt: str = "PNG", **params) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width``×``height`` and whose pixel data is a tiny stub."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def need(*binaries: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian packages, installed by the Makefile)")


def speech(text: str, rate: int = 16000, fmt: str = "wav", words_per_min: int = 150) -> bytes:
    """``text`` spoken by espeak-ng, resampled by sox to ``rate`` Hz mono, as ``fmt``."""
    need("espeak-ng", "sox")
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / f"out.{fmt}"
        subprocess.run(
            ["espeak-ng", "-s", str(words_per_min), "-w", str(raw), text],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            ["sox", str(raw), "-r", str(rate), "-c", "1", str(out)],
            check=True,
            capture_output=True,
        )
        return out.read_bytes()


def wav_samples(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV bytes → float32 samples in [-1, 1] and the sample rate."""
    import wave

    with wave.open(io.BytesIO(data)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0, rate


def pcm_wav(samples: np.ndarray, rate: int = 16000) -> bytes:
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def card(text: str, size: tuple[int, int] = (640, 360), colour: str = "white"):  # type: ignore[no-untyped-def]
    """A video frame: a label on a plain background."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", size, colour)
    ImageDraw.Draw(im).text((30, size[1] // 2 - 25), text, fill="black", font=font(40))
    return im


def make_video(
    scenes: list[tuple[float, object]],
    audio: np.ndarray | None = None,
    fps: int = 10,
    codec: str = "libx264",
    fmt: str = "mp4",
) -> bytes:
    """A video showing each ``(seconds, PIL image)`` scene in turn, with optional 16 kHz audio."""
    import av

    out = io.BytesIO()
    first = scenes[0][1]
    with av.open(out, mode="w", format=fmt) as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height = first.size  # type: ignore[attr-defined]
        video.pix_fmt = "yuv420p"
        astream = None
        if audio is not None:
            astream = container.add_stream("aac" if fmt == "mp4" else "libopus", rate=16000)
            astream.layout = "mono"
        for seconds, image in scenes:
            for _ in range(round(seconds * fps)):
                frame = av.VideoFrame.from_image(image)
                container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if astream is not None and audio is not None:
            pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
            step = 1024
            for start in range(0, len(pcm), step):
                chunk = pcm[start : start + step][None, :]
                frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
                frame.sample_rate = 16000
                frame.pts = start
                container.mux(astream.encode(frame))
            container.mux(astream.encode(None))
    return out.getvalue()
