"""Build the demo media in ``demo/media/`` for the fictional Kestrel KX-40 pump skid.

Everything agrees with ``demo/corpus/`` (valve tags, instruments, the 2026-03 shift log):

- ``kx40-pid-overview.png``   schematic: V-01 → strainer → pump → V-02, seal flush line, tags
- ``kx40-seal-flush-plan11.png``  schematic: API Plan 11 flush through orifice KX40-ORF-03
- ``kx40-bearing-housing.png``    schematic: DE/NDE bearings, TT-103/TT-104, grease points
- ``p2a-skid-photo.jpg``          a rendered "photo" of pump P-2A with its nameplate
- ``p2b-strainer-basket-photo.jpg``  the basket found half blocked, with a torn blue glove
- ``voice-note-bearing-alarm.wav``   operator: bearing temperature alarm, grease overdue
- ``voice-note-strainer-dp.ogg``     operator: strainer dP rising on P-2B
- ``seal-flush-valve-instruction.mp4``  10 s: two instruction cards + spoken instruction

Deterministic: same inputs, same bytes (fixed drawing, espeak-ng, bit-exact muxing; JPEG and
x264 run single-threaded). Needs Pillow, PyAV, espeak-ng and sox.
Run: ``.venv/bin/python demo/make_media.py``.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import wave
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, PngImagePlugin

OUT = Path(__file__).resolve().parent / "media"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
RATE = 16_000
# No random stream serials, encoder version strings or timestamps in the files.
BITEXACT = {"fflags": "+bitexact"}
CODEC_BITEXACT = {"flags": "+bitexact"}


def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(BOLD if bold else FONT, size)


def label(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int = 22) -> None:
    """A boxed schematic label, black on white."""
    f = font(size, bold=True)
    left, top, right, bottom = draw.textbbox(xy, text, font=f)
    draw.rectangle((left - 8, top - 6, right + 8, bottom + 6), fill="white", outline="black")
    draw.text(xy, text, fill="black", font=f)


def valve(draw: ImageDraw.ImageDraw, x: int, y: int) -> None:
    """A gate valve symbol (two triangles point to point) on a horizontal line."""
    draw.polygon([(x - 18, y - 14), (x - 18, y + 14), (x, y)], outline="black", width=3)
    draw.polygon([(x + 18, y - 14), (x + 18, y + 14), (x, y)], outline="black", width=3)


def save_png(image: Image.Image, name: str, description: str) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", description)
    image.save(OUT / name, "PNG", pnginfo=info, optimize=True)


def overview() -> None:
    im = Image.new("RGB", (1400, 800), "white")
    d = ImageDraw.Draw(im)
    d.text((40, 30), "KX-40 PUMP SKID - P&ID OVERVIEW (P-2A)", fill="black", font=font(30, True))
    y = 420
    d.line((60, y, 1340, y), fill="black", width=5)  # main process line
    valve(d, 200, y)
    label(d, (130, y + 40), "SUCTION VALVE V-01")
    d.rectangle((340, y - 50, 470, y + 50), outline="black", width=4)
    label(d, (330, y + 70), "SUCTION STRAINER")
    label(d, (350, y - 110), "DPT-110")
    d.ellipse((620, y - 90, 800, y + 90), outline="black", width=5)  # pump casing
    label(d, (640, y + 110), "PUMP P-2A")
    label(d, (560, y - 160), "PT-101")
    valve(d, 1050, y)
    label(d, (950, y + 40), "DISCHARGE VALVE V-02")
    label(d, (880, y - 110), "PT-102")
    label(d, (1180, y - 60), "FT-106")
    # seal flush line from discharge back to the seal chamber
    d.line((1000, y, 1000, 200, 700, 200, 700, y - 90), fill="black", width=3)
    valve(d, 900, 200)
    label(d, (840, 130), "SEAL FLUSH VALVE V-05")
    label(d, (560, 130), "ORIFICE KX40-ORF-03")
    label(d, (1040, 230), "SEAL FLUSH LINE")
    label(d, (700, 660), "CASING DRAIN V-03")
    label(d, (400, 230), "VENT V-04")
    save_png(im, "kx40-pid-overview.png", "KX-40 pump skid P&ID overview")


def seal_plan() -> None:
    im = Image.new("RGB", (1200, 700), "white")
    d = ImageDraw.Draw(im)
    d.text((40, 30), "SEAL FLUSH - API PLAN 11", fill="black", font=font(30, True))
    d.rectangle((120, 250, 420, 520), outline="black", width=5)
    label(d, (150, 370), "SEAL CHAMBER")
    d.line((420, 330, 1100, 330), fill="black", width=4)
    d.ellipse((560, 310, 600, 350), outline="black", width=3)
    label(d, (480, 380), "ORIFICE KX40-ORF-03  3.0 mm")
    valve(d, 800, 330)
    label(d, (700, 380), "SEAL FLUSH VALVE V-05")
    label(d, (880, 250), "PS-107 FLUSH PRESSURE")
    label(d, (930, 420), "FROM PUMP DISCHARGE")
    label(d, (120, 580), "CLEAN ORIFICE AT EVERY 2,000 h REGREASE")
    save_png(im, "kx40-seal-flush-plan11.png", "KX-40 seal flush plan 11 schematic")


def bearings() -> None:
    im = Image.new("RGB", (1200, 700), "white")
    d = ImageDraw.Draw(im)
    d.text((40, 30), "PUMP BEARING HOUSING - SECTION", fill="black", font=font(30, True))
    d.rectangle((100, 300, 1100, 380), outline="black", width=4)  # shaft
    d.rectangle((250, 240, 370, 440), outline="black", width=5)
    d.rectangle((800, 240, 940, 440), outline="black", width=5)
    label(d, (170, 470), "DE BEARING 6309 C3")
    label(d, (700, 470), "NDE BEARINGS 2x 7309 BECBM")
    label(d, (230, 170), "TT-103")
    label(d, (790, 170), "TT-104")
    label(d, (980, 170), "VT-105")
    label(d, (120, 570), "GREASE NIPPLE DE 15 g  /  NDE 20 g  (KL-2)")
    label(d, (120, 630), "RELIEF PLUG - OPEN 30 MIN AFTER GREASING")
    save_png(im, "kx40-bearing-housing.png", "KX-40 pump bearing housing section")


def _photo_finish(im: Image.Image, seed: int) -> Image.Image:
    """Soft focus and sensor noise so the renders look like photos, not drawings."""
    rng = np.random.default_rng(seed)
    im = im.filter(ImageFilter.GaussianBlur(1.2))
    pixels = np.asarray(im, dtype=np.int16) + rng.normal(0, 6, (im.height, im.width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _save_jpeg(im: Image.Image, name: str, description: str) -> None:
    exif = Image.Exif()
    exif[270] = description  # ImageDescription
    exif[271] = "edgerag demo"  # Make
    im.save(OUT / name, "JPEG", quality=82, exif=exif)


def skid_photo() -> None:
    im = Image.new("RGB", (1024, 683))
    d = ImageDraw.Draw(im)
    for y in range(683):  # wall to floor gradient
        g = 170 - y // 8 if y < 420 else 95 + (y - 420) // 12
        d.line((0, y, 1024, y), fill=(g, g + 4, g + 10))
    d.rectangle((90, 470, 960, 520), fill=(60, 70, 80))  # base frame
    d.rounded_rectangle((520, 280, 900, 470), 40, fill=(30, 80, 160))  # motor, blue
    for x in range(540, 890, 22):
        d.line((x, 290, x, 460), fill=(20, 60, 130), width=6)  # cooling fins
    d.rectangle((430, 340, 520, 410), fill=(230, 200, 40))  # coupling guard, yellow
    d.ellipse((200, 250, 430, 480), fill=(110, 115, 120))  # pump volute, grey
    d.rectangle((240, 120, 300, 260), fill=(120, 120, 125))  # discharge pipe
    d.rectangle((60, 330, 210, 390), fill=(120, 120, 125))  # suction pipe
    d.rectangle((600, 330, 800, 400), fill=(220, 220, 215))  # nameplate
    d.text((612, 340), "KESTREL KX-40", fill="black", font=font(24, True))
    d.text((612, 372), "SN KX40-2317", fill="black", font=font(18, True))
    _save_jpeg(_photo_finish(im, 1), "p2a-skid-photo.jpg", "Pump P-2A skid, motor side")


def strainer_photo() -> None:
    im = Image.new("RGB", (800, 600), (80, 82, 85))
    d = ImageDraw.Draw(im)
    d.ellipse((150, 80, 650, 560), fill=(150, 150, 150), outline=(60, 60, 60), width=12)
    rng = np.random.default_rng(2)
    for _ in range(900):  # 3 mm perforations
        x, y = rng.integers(200, 600), rng.integers(130, 510)
        if (x - 400) ** 2 + (y - 320) ** 2 < 220**2:
            d.ellipse((x - 4, y - 4, x + 4, y + 4), fill=(40, 40, 40))
    d.polygon([(260, 300), (430, 250), (520, 330), (470, 430), (300, 420)], fill=(40, 90, 200))
    d.polygon([(330, 200), (420, 180), (450, 260), (340, 280)], fill=(120, 95, 60))  # scale
    _save_jpeg(
        _photo_finish(im, 3),
        "p2b-strainer-basket-photo.jpg",
        "P-2B suction strainer basket half blocked, torn blue nitrile glove",
    )


def espeak(text: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        subprocess.run(["espeak-ng", "-s", "145", "-w", str(raw), text], check=True)
        subprocess.run(["sox", "-R", str(raw), "-r", str(RATE), "-c", "1", str(out)], check=True)
        with wave.open(str(out)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def write_wav(samples: np.ndarray, path: Path) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def write_ogg(samples: np.ndarray, path: Path) -> None:
    with av.open(str(path), "w", format="ogg", container_options=BITEXACT) as c:
        stream = c.add_stream("libopus", rate=48000, options={"b": "32000", **CODEC_BITEXACT})
        stream.layout = "mono"
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        frame = av.AudioFrame.from_ndarray(
            (samples * 32767).astype(np.int16)[None], format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        for out in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(out):
                c.mux(packet)
        c.mux(stream.encode(None))


def voice_notes() -> None:
    first = espeak(
        "Shift B, pump P 2 B. Bearing temperature alarm on pump two. The non drive end bearing "
        "is at eighty seven degrees. Grease interval overdue. I will regrease it after the swap."
    )
    write_wav(first, OUT / "voice-note-bearing-alarm.wav")
    second = espeak(
        "Strainer differential pressure on P 2 B is zero point four one bar and rising. "
        "Flow reduced to one hundred and ten cubic metres per hour. Swap to P 2 A and clean "
        "the strainer basket if it reaches zero point five bar."
    )
    write_ogg(second, OUT / "voice-note-strainer-dp.ogg")


def card(lines: list[str], colour: tuple[int, int, int]) -> Image.Image:
    im = Image.new("RGB", (640, 360), colour)
    d = ImageDraw.Draw(im)
    for i, text in enumerate(lines):
        d.text((30, 110 + 60 * i), text, fill="black", font=font(34, True))
    return im


def video() -> None:
    fps = 10
    voice = espeak(
        "Before starting the pump, open the seal flush valve V 0 5. "
        "Close it again before any seal work."
    )
    track = np.zeros(10 * RATE, dtype=np.float32)
    track[RATE // 2 : RATE // 2 + len(voice)] = voice[: len(track) - RATE // 2]
    scenes = [
        (5, card(["SEAL FLUSH VALVE V-05", "OPEN BEFORE START"], (255, 255, 255))),
        (5, card(["CLOSE V-05", "BEFORE SEAL WORK"], (255, 230, 120))),
    ]
    path = OUT / "seal-flush-valve-instruction.mp4"
    with av.open(str(path), "w", format="mp4", container_options=BITEXACT) as c:
        vs = c.add_stream("libx264", rate=fps, options={"crf": "30", "threads": "1"})
        vs.width, vs.height, vs.pix_fmt = 640, 360, "yuv420p"
        aus = c.add_stream("aac", rate=RATE, options=CODEC_BITEXACT)
        aus.layout = "mono"
        for seconds, image in scenes:
            for _ in range(seconds * fps):
                c.mux(vs.encode(av.VideoFrame.from_image(image)))
        c.mux(vs.encode(None))
        pcm = (track * 32767).astype(np.int16)
        for start in range(0, len(pcm), 1024):
            frame = av.AudioFrame.from_ndarray(pcm[None, start : start + 1024], "s16", "mono")
            frame.sample_rate, frame.pts = RATE, start
            c.mux(aus.encode(frame))
        c.mux(aus.encode(None))


def spoken_question() -> None:
    """A question asked by voice (a query for the demo, not a document: kept in queries/)."""
    queries = OUT.parent / "queries"
    queries.mkdir(exist_ok=True)
    write_wav(
        espeak("How often should the pump bearings be regreased?"), queries / "spoken-question.wav"
    )


def main() -> None:
    OUT.mkdir(exist_ok=True)
    builds = (overview, seal_plan, bearings, skid_photo, strainer_photo, voice_notes, video)
    for build in (*builds, spoken_question):
        build()
    for path in sorted(OUT.iterdir()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        print(f"{path.name:40s} {path.stat().st_size:>8,d} B  {digest}")


if __name__ == "__main__":
    main()
