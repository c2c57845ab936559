"""The page a technician uses, in headless Chromium: the fleet dashboard (3 nodes, one stopped),
citation previews (PDF page with the passage highlighted, audio from the cited second, image
with its OCR text), a voice question recorded with MediaRecorder, and the phone layout.

Screenshots: compared by size and key elements, never pixels. Run with
EDGERAG_UPDATE_SCREENSHOTS=1 to (re)write docs/img/*.png.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("PIL.Image")
pytest.importorskip("faster_whisper")

from edgerag import Engine, EngineConfig, IndexConfig  # noqa: E402
from edgerag.fleet.shardmap import FleetConfig  # noqa: E402
from edgerag.fleet.status import judge  # noqa: E402
from edgerag.server import ServerSettings, create_app  # noqa: E402

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
ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo"
IMG = ROOT / "docs" / "img"
UPDATE = os.environ.get("EDGERAG_UPDATE_SCREENSHOTS") == "1"
FAST = EngineConfig(encoder="hash", index=IndexConfig(backend="flat", quantization="f32"))
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1100, "height": 800}
VOICE = DEMO / "media" / "voice-note-bearing-alarm.wav"

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason=f"{CHROMIUM} not installed (apt install chromium)"
)


def fleet_status(stopped_at: float) -> dict[str, Any]:
    """The fleet's own judge over 3 nodes' heartbeats; n3 was stopped at ``stopped_at``."""
    now = time.time()
    config = FleetConfig(shards=3, replicas=2)

    def beat(node: str, shards: dict[int, tuple[str, float, float | None]], ts: float) -> dict:
        return {
            "node": node,
            "ts": ts,
            "state": "serving",
            "lsn": 42,
            "shards": {
                str(s): {
                    "state": state,
                    "reason": "" if state == "serving" else "behind the log",
                    "quarantines": 0,
                    "modalities": {
                        "text": {"applied": 40, "pending": 0, "lag_s": lag, "drift": drift},
                        "image": {"applied": 2, "pending": 0, "lag_s": lag / 4, "drift": None},
                    },
                }
                for s, (state, lag, drift) in shards.items()
            },
        }

    beats = {
        "n1": beat("n1", {0: ("serving", 0.8, 0.004), 1: ("serving", 1.2, 0.003)}, now - 1.4),
        "n2": beat("n2", {1: ("serving", 2.0, 0.01), 2: ("serving", 0.5, 0.002)}, now - 2.6),
        "n3": beat("n3", {0: ("serving", 0.9, 0.004), 2: ("serving", 0.7, 0.001)}, stopped_at),
    }
    shardmap = {0: ["n1", "n3"], 1: ["n1", "n2"], 2: ["n2", "n3"]}
    return judge(config, {n: {} for n in beats}, shardmap, beats, now)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real server (uvicorn, in this process so the fleet view can be installed) over the
    demo manual, a photo of a drawing and a voice note."""
    db = tmp_path_factory.mktemp("tour") / "kb"
    inputs = [
        DEMO / "corpus" / "kx40-manual.pdf",
        DEMO / "corpus" / "kx40-troubleshooting.md",
        DEMO / "media" / "kx40-seal-flush-plan11.png",
        DEMO / "media" / "voice-note-strainer-dp.ogg",
    ]
    with Engine.open(db, FAST) as engine:
        report = engine.ingest(inputs)
        assert report.ok and len(report.added) == 4, report.errors
    app = create_app(ServerSettings(db=db))
    stopped_at = time.time() - 40
    app.state.fleet_status = lambda: fleet_status(stopped_at)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def playwright():  # type: ignore[no-untyped-def]
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):  # type: ignore[no-untyped-def]
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    yield b
    b.close()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def screenshot(target: Any, name: str, tmp_path: Path, **kw: Any) -> tuple[int, int]:
    """Take the screenshot; with EDGERAG_UPDATE_SCREENSHOTS=1 keep it in docs/img. Either way,
    compare its size with the committed one (a layout change shows as a size change)."""
    path = (IMG if UPDATE else tmp_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    data = target.screenshot(path=str(path), **kw)
    size = png_size(data)
    assert 20_000 < len(data) < 1_500_000  # a real picture, small enough for the repo
    committed = IMG / name
    if committed.exists() and not UPDATE:
        want = png_size(committed.read_bytes())
        assert abs(size[0] - want[0]) <= 2 and abs(size[1] - want[1]) <= want[1] * 0.25, (
            size,
            want,
        )
    return size


def open_page(browser: Any, url: str, viewport: dict[str, int], **kw: Any) -> Any:
    page = browser.new_page(viewport=viewport, **kw)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    page.goto(url + "/")
    page.wait_for_function(
        "document.querySelector('#collection').textContent.includes('4 documents')"
    )
    return page


def no_horizontal_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], width


def search(page: Any, text: str) -> None:
    page.fill("#q", text)
    page.click("#search-btn")
    page.wait_for_selector("#results li")


def test_fleet_dashboard(url: str, browser: Any, tmp_path: Path) -> None:
    page = open_page(browser, url, DESKTOP)
    page.click("#tab-fleet")
    page.wait_for_selector("#fleet-grid")
    assert page.inner_text("#fleet-verdict") == "NOT GREEN"
    cards = page.locator("#fleet-nodes .card")
    assert cards.count() == 3
    n3 = page.locator('#fleet-nodes .card[data-node="n3"]')
    assert n3.get_attribute("data-state") == "unreachable"
    age = re.search(r"heartbeat (\d+) s ago", n3.inner_text())
    assert age and 40 <= int(age.group(1)) < 90, n3.inner_text()
    assert "s ago" in page.locator('#fleet-nodes .card[data-node="n1"]').inner_text()
    # shards x replicas: 3 rows, one cell per node, n3's replicas unreachable, gaps marked
    assert page.locator("#fleet-grid tbody tr").count() == 3
    assert page.locator('#fleet-grid td[data-state="unreachable"]').count() == 2
    assert page.locator('#fleet-grid td[data-state="serving"]').count() == 4
    assert page.locator("#fleet-grid td.none").count() == 3
    # lag against each modality's budget: text 30 s, image 5 s
    lag = page.inner_text("#fleet-lag")
    assert "/ 30 s" in lag and "/ 5 s" in lag and "/ 0.05" in lag
    text = page.inner_text("#panel-fleet")
    assert "{" not in text and "node n3 unreachable" in text
    assert not page.errors
    screenshot(page, "fleet-dashboard.png", tmp_path, full_page=True)

    phone = open_page(browser, url, PHONE, device_scale_factor=1)
    phone.click("#tab-fleet")
    phone.wait_for_selector("#fleet-grid")
    no_horizontal_scroll(phone)
    screenshot(phone, "phone-fleet.png", tmp_path)


def test_pdf_citation_preview_highlights_the_passage(url: str, browser: Any, tmp_path: Path):
    page = open_page(browser, url, DESKTOP)
    search(page, "seal flush pressure low E-107")
    link = page.locator("#results li a", has_text="kx40-manual.pdf p.").first
    link.click()
    page.wait_for_selector("#preview .page-view img")
    page.wait_for_function("document.querySelector('#preview .page-view img').naturalWidth > 0")
    assert page.locator("#preview").get_attribute("data-kind") == "pdf-page"
    marks = page.locator("#preview .page-view .mark")
    assert marks.count() >= 1
    box = marks.first.bounding_box()
    image = page.locator("#preview .page-view img").bounding_box()
    assert (
        box
        and image
        and box["width"] > 20
        and image["y"] <= box["y"] <= image["y"] + image["height"]
    )
    assert "p." in page.inner_text("#preview-title")
    assert not page.errors
    screenshot(page.locator("#preview"), "preview-pdf.png", tmp_path)


def test_audio_citation_plays_from_the_cited_second(url: str, browser: Any, tmp_path: Path):
    page = open_page(browser, url, DESKTOP)
    page.fill("#k", "20")
    # words from the middle of the strainer voice note: the hit is a segment that starts inside
    # the recording, so "from the cited second" means something
    search(page, "voice note: swap to P2A and clean the strainer basket")
    hits = page.locator('#results li[data-modality="audio"] a')
    later = [i for i in range(hits.count()) if " 0.0–" not in hits.nth(i).inner_text()]
    assert later, [hits.nth(i).inner_text() for i in range(hits.count())]
    hit = hits.nth(later[0])
    label = hit.inner_text()
    hit.click()
    page.wait_for_selector("#preview audio#preview-player")
    assert page.locator("#preview").get_attribute("data-kind") == "audio"
    start = float(page.inner_text("#preview button.secondary >> nth=-1").split()[-2])
    assert f"{start:.1f}" in label
    page.wait_for_function("document.querySelector('#preview-player').readyState >= 1")
    current = page.evaluate("document.querySelector('#preview-player').currentTime")
    assert start > 0 and abs(current - start) < 0.6
    assert page.inner_text("#preview .item-text").strip()
    assert not page.errors
    screenshot(page.locator("#preview"), "preview-audio.png", tmp_path)


def test_image_citation_shows_the_image_and_its_text(url: str, browser: Any) -> None:
    page = open_page(browser, url, DESKTOP)
    search(page, "seal flush plan 11 drawing")
    page.locator('#results li[data-modality="image"] a').first.click()
    page.wait_for_selector("#preview #preview-image")
    page.wait_for_function("document.querySelector('#preview-image').naturalWidth > 0")
    assert page.inner_text("#preview .ocr-text").strip()
    assert not page.errors


def test_phone_layout_has_no_horizontal_scroll(url: str, browser: Any, tmp_path: Path) -> None:
    page = open_page(browser, url, PHONE, device_scale_factor=1)
    search(page, "E-107 seal flush")
    no_horizontal_scroll(page)
    page.fill("#q", "What does alarm E-107 mean?")
    page.click("#ask-btn")
    page.wait_for_selector("#citations li", timeout=60_000)
    no_horizontal_scroll(page)
    assert not page.errors
    screenshot(page, "phone.png", tmp_path)


def test_voice_question_recorded_in_the_browser(url: str, playwright: Any) -> None:
    """Chromium's fake microphone plays a real voice note; MediaRecorder records it, the page
    sends it as the question and shows what was heard above the results."""
    b = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            *ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={VOICE}",
        ],
    )
    try:
        page = open_page(b, url, DESKTOP, permissions=["microphone"])
        assert page.locator("#record-btn").is_visible()
        page.click("#record-btn")
        try:
            page.wait_for_selector('#record-btn[aria-pressed="true"]', timeout=20_000)
        except sync_api.TimeoutError:
            pytest.fail(f"recording did not start: {page.inner_text('#status')}")
        page.wait_for_timeout(6000)
        page.click("#record-btn")
        page.wait_for_selector("#recorded-audio")
        page.click("#search-btn")
        page.wait_for_selector("#heard", timeout=120_000)
        heard = page.inner_text("#heard")
        assert heard.startswith("heard:") and len(heard) > len("heard: “”") + 5
        assert page.locator("#results li").count() >= 1
        assert not page.errors
    finally:
        b.close()
