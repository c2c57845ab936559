"""Photo and voice questions: label guesses stay out of what is shown unless confident, the
transcript is surfaced, and the demo checks its own answers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgerag import Engine
from edgerag.encoders.visual import ImageNetClass
from edgerag.generation.prompts import render_source
from edgerag.ingest.media import LABEL_TEXT_MIN_PROB, MediaPipeline
from edgerag.types import Hit, Query

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo"
EDGERAG = shutil.which("edgerag", path=str(Path(sys.executable).parent)) or "edgerag"
IPOD = ImageNetClass("n03584254", ("iPod",), "a pocket-sized device used to play music files")
CAT = ImageNetClass("n02124075", ("Egyptian cat",), "a domestic cat")


def test_label_guesses_below_the_threshold_never_become_item_text():
    from PIL import Image

    pipe = MediaPipeline(ocr=False)
    image = Image.new("RGB", (32, 32), (40, 90, 200))
    meta = {"ocr_text": "P-2B STRAINER", "_labels": [(IPOD, 0.19), (CAT, 0.05)]}
    text = pipe._image_text("basket.jpg", [], meta, image=image)
    assert "iPod" not in text and "cat" not in text and "P-2B STRAINER" in text
    meta = {"_labels": [(CAT, LABEL_TEXT_MIN_PROB + 0.05), (IPOD, 0.1)]}
    text = pipe._image_text("chelsea.png", [], meta, image=image)
    assert "Egyptian cat" in text and "iPod" not in text


def test_prompt_shows_only_confident_labels():
    photo = Hit(
        1,
        "p#0",
        "p",
        "p.jpg",
        "image",
        1.0,
        "P-2B strainer",
        metadata={"labels": [["iPod", 0.19], ["Egyptian cat", 0.79]]},
    )
    rendered = render_source(photo)
    assert "iPod" not in rendered and "Labels: Egyptian cat" in rendered


def test_ingested_industrial_photo_carries_no_guessed_labels(tmp_path):
    """The real demo photo: EfficientNet guesses "iPod" at p≈0.19; its text must not say so."""
    with Engine.open(tmp_path / "db") as eng:
        eng.ingest([DEMO / "media" / "p2b-strainer-basket-photo.jpg"])
        hits = eng.search("strainer basket", k=1).hits
    assert hits and "strainer" in hits[0].text.lower()
    assert "ipod" not in hits[0].text.lower() and "plectrum" not in hits[0].text.lower()
    assert hits[0].metadata["labels"]  # kept as data (and a retrieval feature), not as text


def test_voice_question_transcript_is_surfaced(tmp_path):
    voice = DEMO / "queries" / "spoken-question.wav"
    with Engine.open(tmp_path / "db") as eng:
        eng.ingest([DEMO / "corpus" / "kx40-troubleshooting.md"])
        answer = eng.ask(Query(audio=voice.read_bytes()))
        response = eng.search(Query(audio=voice.read_bytes()), k=2)
    assert answer.heard and "pump bearings" in answer.heard.lower()
    assert answer.to_dict()["heard"] == answer.heard
    assert response.to_dict()["heard"] == response.heard == answer.heard
    text_only = Engine.open(":memory:")
    try:
        text_only.ingest([DEMO / "corpus" / "kx40-troubleshooting.md"])
        assert "heard" not in text_only.ask("bearing grease").to_dict()
    finally:
        text_only.close()
    proc = subprocess.run(
        [EDGERAG, "ask", "--db", str(tmp_path / "db"), "--audio", str(voice)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"heard: {answer.heard}" in proc.stdout + proc.stderr
    proc = subprocess.run(
        [EDGERAG, "ask", "--db", str(tmp_path / "db"), "--audio", str(voice), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert json.loads(proc.stdout)["heard"] == answer.heard


def test_demo_answers_contain_their_expected_facts(tmp_path):
    """The real demo, real corpus, default (MiniLM) encoder: every check prints ✓."""
    proc = subprocess.run(
        [EDGERAG, "demo", "--db", str(tmp_path / "demo-data")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout
    n_questions = sum(
        1
        for line in (DEMO / "questions.txt").read_text().splitlines()
        if " => " in line and not line.startswith("#")
    )
    assert n_questions == 8 and out.count("✓") + out.count("✗") == n_questions
    assert "heard: " in out
    failed = [block.split("\n", 1)[0] for block in out.split("\nQ: ")[1:] if "✗" in block]
    assert failed == [], out
    assert f"demo checks: {n_questions}/{n_questions}" in out
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("line", ["no arrow here", "What? => "])
def test_demo_question_lines_without_an_expected_fact_are_refused(tmp_path, line):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "questions.txt").write_text(line + "\n")
    proc = subprocess.run(
        [EDGERAG, "demo", "--db", str(tmp_path / "db"), "--demo-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0 and "QUESTION => EXPECTED FACT" in proc.stderr
