"""Video: frames at 1 fps (duplicates collapsed) with OCR, the spoken track with timestamps."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("PIL")
pytest.importorskip("faster_whisper")

from edgerag.errors import InputError, InputTooLargeError  # noqa: E402
from edgerag.ingest.limits import Limits  # noqa: E402
from edgerag.ingest.media import MediaPipeline  # noqa: E402
from edgerag.types import Modality  # noqa: E402
from media_samples import card, make_video, need, speech, wav_samples  # noqa: E402

SPOKEN_AT = 4.0  # seconds into the video where the instruction starts


@pytest.fixture(scope="module")
def pipeline() -> MediaPipeline:
    need("tesseract", "espeak-ng", "sox")
    return MediaPipeline()


@pytest.fixture(scope="module")
def clip() -> bytes:
    """3 s "SEAL FLUSH LINE", 3 s "STRAINER BASKET"; speech starting at 4 s."""
    voice, rate = wav_samples(speech("Bearing temperature alarm on pump two."))
    track = np.zeros(int(7 * rate), dtype=np.float32)
    at = int(SPOKEN_AT * rate)
    track[at : at + len(voice)] = voice[: len(track) - at]
    scenes = [(3.0, card("SEAL FLUSH LINE")), (3.0, card("STRAINER BASKET"))]
    return make_video(scenes, audio=track, fps=10)


def test_frames_and_speech_with_timestamps(pipeline: MediaPipeline, clip: bytes) -> None:
    doc = pipeline.extract("walkdown.mp4", clip)
    assert doc.modality is Modality.VIDEO and doc.mime == "video/mp4"
    assert doc.metadata["width"] == 640 and doc.metadata["duration"] == pytest.approx(6, abs=1)
    frames = [it for it in doc.items if it.modality is Modality.IMAGE]
    spoken = [it for it in doc.items if it.modality is Modality.AUDIO]
    # six 1-fps samples of two static scenes collapse into two frame items
    assert len(frames) == 2, [(f.t_start, f.t_end, f.text) for f in frames]
    seal, strainer = frames
    assert "SEAL FLUSH LINE" in seal.metadata["ocr_text"] and "SEAL FLUSH LINE" in seal.text
    assert "STRAINER BASKET" in strainer.metadata["ocr_text"]
    assert (seal.t_start, seal.t_end) == (0.0, 3.0)
    assert (strainer.t_start, strainer.t_end) == (3.0, 6.0)
    assert seal.visual.shape == (1280,) and seal.thumbnail
    # the spoken words come out in a window that covers 4 s onwards
    said = [it for it in spoken if "temperature" in it.text.lower()]
    assert said, [it.text for it in spoken]
    assert said[0].t_start <= SPOKEN_AT + 0.5 < said[0].t_end
    first_word_at = said[0].metadata["words"][0][1]
    assert first_word_at == pytest.approx(SPOKEN_AT, abs=0.8)
    # items are in time order with consecutive positions
    assert [it.position for it in doc.items] == list(range(len(doc.items)))
    starts = [it.t_start for it in doc.items]
    assert starts == sorted(starts)


def test_video_without_audio_and_without_ocr() -> None:
    need("tesseract")
    scenes = [(1.0, card("A", colour="white")), (1.0, card("B", colour="yellow"))]
    data = make_video(scenes, fps=5, codec="libvpx-vp9", fmt="webm")
    doc = MediaPipeline(video_ocr=False).extract("silent.webm", data)
    assert doc.mime == "video/webm" and not doc.metadata["has_audio"]
    assert [it.modality for it in doc.items] == [Modality.IMAGE, Modality.IMAGE]
    assert all("ocr_text" not in it.metadata for it in doc.items)


def test_silent_audio_track_is_not_an_error(pipeline: MediaPipeline) -> None:
    data = make_video([(2.0, card("X"))], audio=np.zeros(32000, dtype=np.float32), fps=5)
    doc = MediaPipeline(video_ocr=False).extract("quiet.mp4", data)
    assert [it.modality for it in doc.items] == [Modality.IMAGE]
    assert "silent audio track" in doc.metadata["audio_track"]


def test_corrupt_and_truncated_video(pipeline: MediaPipeline, clip: bytes) -> None:
    with pytest.raises(InputError, match=r"^cut\.mp4: "):
        pipeline.extract("cut.mp4", clip[: len(clip) // 2])
    with pytest.raises(InputError, match=r"^junk\.mkv: not a readable video"):
        pipeline.extract("junk.mkv", b"\x1a\x45\xdf\xa3" + bytes(500))
    with pytest.raises(InputError, match=r"^zero\.mp4: empty file"):
        pipeline.extract("zero.mp4", b"")


def test_video_limits(clip: bytes) -> None:
    with pytest.raises(InputTooLargeError, match=r"^long\.mp4: video is .*max_video_seconds"):
        MediaPipeline(limits=Limits(max_video_seconds=2)).extract("long.mp4", clip)
    with pytest.raises(InputTooLargeError, match=r"^big\.mp4: .*Limits.max_pixels"):
        MediaPipeline(limits=Limits(max_pixels=10_000)).extract("big.mp4", clip)
    with pytest.raises(InputTooLargeError, match=r"^many\.mp4: .*Limits.max_frames"):
        MediaPipeline(limits=Limits(max_frames=1), video_ocr=False).extract("many.mp4", clip)
