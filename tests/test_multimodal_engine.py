"""Multimodal through the Engine, on real files: OCR'd images, spoken questions, video,
photo → photo, early and late fusion, boosts, modality filters, bad media in a batch."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("PIL")
pytest.importorskip("faster_whisper")

import media_samples as ms  # noqa: E402
from edgerag import Engine, Query  # noqa: E402
from edgerag.errors import ConfigError  # noqa: E402
from edgerag.retrieval.query import encode_query  # noqa: E402

PASSAGES = {
    "bearings.txt": "Regrease the pump bearings every 2000 operating hours with lithium grease.",
    "strainer.txt": "Clean the suction strainer basket when the differential pressure exceeds "
    "0.3 bar.",
    "coupling.txt": "Align the coupling with a dial indicator to within 0.05 millimetres.",
}


def _photo(seed: int, base: str) -> bytes:
    """A 'photo': a real scikit-image picture, slightly shifted/re-coloured per seed."""
    from PIL import Image
    from skimage import data

    arr = getattr(data, base)()
    im = Image.fromarray(arr).convert("RGB")
    rng = np.random.default_rng(seed)
    w, h = im.size
    dx, dy = rng.integers(0, w // 10), rng.integers(0, h // 10)
    im = im.crop((dx, dy, w - w // 10 + dx, h - h // 10 + dy)).resize((320, 240))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=85)
    return out.getvalue()


@pytest.fixture(scope="module")
def engine():
    ms.need("espeak-ng", "sox", "tesseract")
    with Engine.open(":memory:") as eng:  # real MiniLM + EfficientNet + tesseract + Whisper
        inputs = [(name, text.encode()) for name, text in PASSAGES.items()]
        inputs += [
            ("label.png", ms.painted_text("PRESSURE RELIEF VALVE PRV-9")),
            ("coffee-1.jpg", _photo(1, "coffee")),
            ("rocket-1.jpg", _photo(1, "rocket")),
            ("astronaut-1.jpg", _photo(1, "astronaut")),
        ]
        speech = ms.wav_samples(ms.speech("open the drain valve before removing the filter"))[0]
        silence = np.zeros(16000 * 2, dtype=np.float32)
        video = ms.make_video(
            [(2.0, ms.card("STEP 1 CLOSE VALVE V-3")), (3.0, ms.card("STEP 2 VENT THE CASING"))],
            audio=np.concatenate([silence, speech]),
        )
        inputs.append(("howto.mp4", video))
        report = eng.ingest(inputs)
        assert report.ok, report.errors
        yield eng


def test_painted_text_is_found_by_a_text_query(engine):
    hit = engine.search("pressure relief valve PRV-9", k=1).hits[0]
    assert hit.source == "label.png" and hit.modality == "image"
    assert "PRV-9" in hit.text


def test_spoken_question_finds_the_answering_passage(engine):
    audio = ms.speech("how often should the pump bearings be greased")
    response = engine.search(Query(audio=audio), k=3, filters={"modality": "text"})
    assert response.hits[0].source == "bearings.txt"
    assert "audio_transcribe" in response.timings_ms


def test_video_frames_and_speech_have_timestamps(engine):
    frame = engine.search("vent the casing", k=1, filters={"doc_id": "howto.mp4"}).hits[0]
    assert frame.modality == "image" and 1.5 <= frame.t_start <= 3.5
    words = engine.search("drain valve filter", k=5, filters={"modality": "audio"}).hits[0]
    assert words.doc_id == "howto.mp4"
    # 5 s windows: the one holding the speech (which starts at 2 s) covers it, and the word
    # timestamps inside it are in the video's timeline.
    assert words.t_start <= 2.5 < words.t_end
    word_times = [w[1] for w in words.metadata["words"]]
    assert word_times and min(word_times) >= 1.5


def test_photo_finds_the_most_similar_photo(engine):
    for base in ("coffee", "rocket", "astronaut"):
        response = engine.search(
            Query(image=_photo(7, base)), k=1, ocr=False, filters={"modality": "image"}
        )
        assert response.hits[0].source == f"{base}-1.jpg"
        assert "visual" in response.hits[0].scores


@pytest.mark.parametrize("fusion", ["early", "late"])
def test_text_plus_photo_fuses(engine, fusion):
    q = Query(text="rocket launch", image=_photo(3, "rocket"))
    response = engine.search(q, k=3, fusion=fusion, ocr=False)
    assert response.hits[0].source == "rocket-1.jpg"
    searches = response.plan.count(":")
    # early: one search per space (text, visual, and the joint head's imagetext when present);
    # late: one per part (the phrase, the photo's words, features and head vector, per space)
    parts = encode_query(engine, q, ocr=False).parts
    spaces = {p.space for p in parts}
    assert {"text", "visual"} <= spaces
    assert searches == (len(spaces) if fusion == "early" else len(parts))


def test_boosts_and_modality_filter(engine):
    plain = engine.search("valve", k=10)
    boosted = engine.search("valve", k=10, boosts={"image": 10.0})
    assert boosted.hits[0].modality == "image"
    assert boosted.hits[0].scores["boost"] == 10.0
    assert {h.modality for h in plain.hits} != {"image"}
    only_audio = engine.search("valve", k=10, filters={"modality": "audio"})
    assert only_audio.hits and {h.modality for h in only_audio.hits} == {"audio"}


def test_bad_media_in_a_batch(engine, tmp_path):
    before = engine.stats()["documents"]
    good = ms.painted_text("COOLANT PUMP CP-4")
    report = engine.ingest(
        [
            ("truncated.png", good[: len(good) // 2]),
            ("bomb.png", ms.png_header_only(100_000, 100_000)),
            ("silent.wav", ms.pcm_wav(np.zeros(16000 * 3, dtype=np.float32))),
            ("empty.ogg", b""),
            ("cp4.png", good),
        ]
    )
    failed = {name for name, _ in report.errors}
    assert failed == {"truncated.png", "bomb.png", "silent.wav", "empty.ogg"}
    assert all(reason for _, reason in report.errors)
    assert report.added == ["cp4.png"]
    assert engine.stats()["documents"] == before + 1


def test_empty_query_is_rejected(engine):
    with pytest.raises(ConfigError):
        engine.search(Query())
