"""Citation previews over HTTP: a PDF page rendered by poppler with the passage's boxes."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import quote

import pytest

pytest.importorskip("fastapi")
fpdf = pytest.importorskip("fpdf")

from fastapi.testclient import TestClient  # noqa: E402

from edgerag import Engine, EngineConfig, IndexConfig  # noqa: E402
from edgerag.server import ServerSettings, create_app  # noqa: E402
from edgerag.server.auth import KeyStore  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("pdftoppm") is None, reason="poppler-utils not installed"
)
FAST = EngineConfig(encoder="hash", index=IndexConfig(backend="flat", quantization="f32"))


def manual_pdf() -> bytes:
    pdf = fpdf.FPDF()
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, "KX-40 manual. Chapter 1: installation of the pump on its base frame.")
    pdf.add_page()
    pdf.multi_cell(
        0,
        8,
        "Chapter 6: cleaning. Wipe the panel with a dry cloth once a week.",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.multi_cell(0, 8, "Alarm E-107 on the KX-40 panel: discharge pressure above the trip limit.")
    return bytes(pdf.output())


@pytest.fixture
def client(tmp_path: Path):
    db = tmp_path / "kb"
    Engine.open(db, FAST).close()
    key = KeyStore(db).create("write", "t")[1]
    with TestClient(create_app(ServerSettings(db=db))) as c:
        c.headers["X-API-Key"] = key
        r = c.post(
            "/ingest",
            files=[("files", ("manual.pdf", manual_pdf())), ("files", ("n.txt", b"Plain note."))],
        )
        assert r.status_code == 200, r.text
        yield c


def test_pdf_item_preview_page_and_highlight(client: TestClient) -> None:
    hits = client.post("/search", json={"query": "E-107 discharge", "k": 5}).json()["hits"]
    hit = next(h for h in hits if h["page"] == 2)
    quote_ = "discharge pressure above the trip limit"
    pv = client.get(f"/items/{quote(hit['id'], safe='')}/preview", params={"passage": quote_})
    assert pv.status_code == 200, pv.text
    data = pv.json()
    assert data["kind"] == "pdf-page" and data["page"] == 2
    boxes = data["highlights"]
    assert len(boxes) == 1  # the quote sits on one line
    box = boxes[0]
    assert 0 < box["x"] < 1 and 0 < box["y"] < 1 and 0 < box["w"] <= 1 and 0 < box["h"] < 0.1
    # the whole item text (no quote) covers more lines than the quote
    whole = client.get(f"/items/{quote(hit['id'], safe='')}/preview").json()["highlights"]
    assert len(whole) >= 2

    png = client.get(data["page_image"], params={"width": 400})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png", png.text
    assert png.content.startswith(b"\x89PNG")
    width = int.from_bytes(png.content[16:20], "big")
    assert width == 400

    missing = client.get(data["page_image"].replace("/pages/2.png", "/pages/9.png"))
    assert missing.status_code in (404, 422)


def test_text_item_preview_and_unknown_item(client: TestClient) -> None:
    hits = client.post("/search", json={"query": "plain note", "k": 5}).json()["hits"]
    hit = next(h for h in hits if h["source"] == "n.txt")
    data = client.get(f"/items/{quote(hit['id'], safe='')}/preview").json()
    assert data["kind"] == "text" and data["text"].startswith("Plain note")
    assert client.get("/items/nope%231/preview").status_code == 404
    # a text document is not a PDF: no page to render
    assert client.get(f"/documents/{quote('n.txt', safe='')}/pages/1.png").status_code == 404
