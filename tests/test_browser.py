"""The web page in a real headless browser (Debian chromium driven by playwright's driver).

Upload a photo with a question, see the sources with modality, scores and timings, and the
cited answer whose citation opens the cited document. Never downloads a browser: it uses
/usr/bin/chromium and skips with the reason when it (or playwright) is missing.
"""

from __future__ import annotations

import base64
import shutil

import pytest

from media_samples import painted_text

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
httpx = pytest.importorskip("httpx")

from edgerag import Engine, EngineConfig, IndexConfig  # noqa: E402
from test_server_process import create_key, start  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAST = EngineConfig(encoder="hash", index=IndexConfig(backend="flat", quantization="f32"))
ALARM = b"Alarm E-107 means the discharge pressure is above the trip limit. Check the valve."
PUMP = b"# Pump seal\n\nReplace the seal when the pump leaks. Torque the gland bolts to 25 Nm."

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason=f"{CHROMIUM} not installed (apt install chromium)"
)


def photo(text: str) -> bytes:
    pytest.importorskip("PIL.Image")
    return painted_text(text)


def manual_pdf() -> bytes:
    fpdf = pytest.importorskip("fpdf")
    pdf = fpdf.FPDF()
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, "KX-40 manual. Chapter 1: installation of the pump on its base frame.")
    pdf.add_page()
    pdf.multi_cell(
        0,
        8,
        "Chapter 7: alarm codes. Alarm E-107 on the KX-40 panel: discharge "
        "pressure above the trip limit; close the discharge valve slowly.",
    )
    return bytes(pdf.output())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("browser") / "kb"
    Engine.open(db, FAST).close()
    write = create_key(db, "write")
    srv = start(db)
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        files = [
            ("files", ("alarms.txt", ALARM)),
            ("files", ("pump.md", PUMP)),
            ("files", ("kx40-manual.pdf", manual_pdf())),
        ]
        r = c.post("/ingest", files=files, headers={"X-API-Key": write})
        assert r.status_code == 200 and len(r.json()["added"]) == 3, r.text
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def test_photo_question_shows_sources_and_cited_answer(served, browser, tmp_path):
    image = tmp_path / "panel.png"
    image.write_bytes(photo("ALARM E-107"))
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(served.url + "/")
    page.wait_for_function(
        "document.querySelector('#collection').textContent.includes('3 documents')"
    )
    assert page.locator("#tab-fleet").is_hidden()  # /fleet/status is 404 on a single node

    page.fill("#q", "What does this alarm mean?")
    page.set_input_files("#image", str(image))
    assert page.locator("#image-preview").is_visible()
    page.click("#ask-btn")
    page.wait_for_selector("#citations li", timeout=30_000)

    # Sources: ranked, with modality, scores; the answer: text with [n] links and citations.
    first = page.locator("#results li").first
    assert "E-107" in first.inner_text()
    assert first.locator(".badge").inner_text() in ("text", "image")
    assert "score" in first.inner_text()
    answer = page.inner_text("#answer-text")
    assert "discharge" in answer and "[1]" in answer
    assert "total" in page.inner_text("#answer-timings")
    cite = page.locator("#answer-text a.cite").first
    href = cite.get_attribute("href")
    assert href.startswith("/files/")
    hrefs = page.eval_on_selector_all("#citations a", "els => els.map(e => e.getAttribute('href'))")
    cited = {h.split("#")[0] for h in hrefs}
    assert cited & {"/files/alarms.txt", "/files/kx40-manual.pdf"}, hrefs
    assert all(h.endswith("#page=2") for h in hrefs if "kx40-manual.pdf" in h)

    # A citation opens a preview of the cited passage; from there, the whole original.
    if "/files/alarms.txt" in cited:
        page.locator("#citations a[href='/files/alarms.txt']").first.click()
        page.wait_for_selector("#preview .item-text")
        assert "E-107" in page.inner_text("#preview .item-text")
        assert page.locator("#preview .item-text mark").count() == 1  # the quoted sentence
        with page.expect_popup() as popup:
            page.click("#preview-open")
        opened = popup.value
        opened.wait_for_load_state()
        assert "E-107" in opened.inner_text("body")
        page.click("#preview-close")
    # Expected 404s: the fleet probe on a single node, thumbnails of items without one.
    errors = [e for e in errors if "status of 404" not in e]
    assert not errors, errors


def test_search_button_shows_timings_and_modalities(served, browser):
    page = browser.new_page()
    page.goto(served.url + "/")
    page.fill("#q", "gland bolts torque")
    page.click("#search-btn")
    page.wait_for_selector("#results li")
    assert "pump.md" in page.locator("#results li").first.inner_text()
    timings = page.inner_text("#timings")
    assert "encode" in timings and "ann" in timings and "bm25" in timings
    assert page.locator("#answer").is_hidden()


def test_errors_are_shown_not_swallowed(served, browser):
    page = browser.new_page()
    page.goto(served.url + "/")
    page.click("#tab-ingest")
    page.set_input_files(
        "#files", files=[{"name": "x.txt", "mimeType": "text/plain", "buffer": b"hello"}]
    )
    page.click("#ingest-form button[type=submit]")
    page.wait_for_selector("#ingest-status.error")
    assert "401" in page.inner_text("#ingest-status")  # no write key in the page


def test_pdf_citation_opens_the_cited_page(served, browser):
    page = browser.new_page()
    page.goto(served.url + "/")
    page.fill("#q", "Which chapter lists the alarm codes?")
    page.select_option("#mode", "bm25")
    page.click("#ask-btn")
    page.wait_for_selector("#citations li", timeout=30_000)
    chapter7 = page.locator("#results li", has_text="Chapter 7").first
    assert chapter7.locator("a").first.get_attribute("href") == "/files/kx40-manual.pdf#page=2"
    pdf_links = ["/files/kx40-manual.pdf#page=2"]
    data = base64.b64decode(
        page.evaluate(
            "async (u) => { const b = await (await fetch(u)).arrayBuffer();"
            " return btoa(String.fromCharCode(...new Uint8Array(b))); }",
            pdf_links[0].split("#")[0],
        )
    )
    assert data.startswith(b"%PDF")


def test_api_docs_render_offline(served, browser):
    """/docs renders Swagger UI with every request to another host blocked (an offline box)."""
    page = browser.new_page()
    external: list[str] = []

    def only_local(route):
        if route.request.url.startswith(served.url):
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(served.url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
    assert "edgerag" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    paths = page.eval_on_selector_all(
        ".opblock-summary-path", "els => els.map(e => e.textContent.trim())"
    )
    assert "/search" in paths and "/answer" in paths
    assert external == []
