"""Draw ``demo/queries/battery-photo.png``: a query picture with no words in it and none around.

A plain drawing of a battery: no text to OCR, no caption, a meaningless file name, and ImageNet
has no "battery" class, so only the joint head (image → the words' space) can connect it to the
troubleshooting guide's "E-120 battery low … replace KX40-BAT" row. Deterministic (fixed
drawing, no metadata). Run: ``.venv/bin/python demo/make_joint_query.py``.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent / "queries" / "battery-photo.png"


def battery(side: int = 512) -> Image.Image:
    image = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((206, 60, 306, 110), 12, fill=(70, 70, 70))  # terminal cap
    draw.rounded_rectangle(
        (146, 100, 366, 470), 36, fill=(235, 235, 235), outline=(60, 60, 60), width=16
    )
    draw.rounded_rectangle((176, 200, 336, 440), 18, fill=(60, 190, 80))  # charge level
    for y in (300, 370):  # cell bars
        draw.rectangle((176, y, 336, y + 10), fill=(235, 235, 235))
    return image


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    battery().save(OUT, format="PNG", optimize=True)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
