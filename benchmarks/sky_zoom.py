r"""Side-by-side zooms of the source's smoothest window in several outputs of one pair.

Reads the PNGs that ``benchmarks/pixels.py --pure`` wrote for a pair and writes one JPEG strip
(source | pure map | regrain | POT EMD, by default), each crop enlarged 3x with nearest
neighbours so that grain and 8x8 blocks stay visible. The window is the source's smoothest
(:func:`otcolor.preview.smoothest_window`), found the same way on any pair.

Usage::

    python benchmarks/pixels.py --pure --pairs ocean --out benchmarks/output
    python benchmarks/sky_zoom.py benchmarks/output/ocean_day_to_ocean_sunset \
        examples/ocean_day.jpg -o docs/ocean_sky_zoom.jpg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from otcolor.preview import smoothest_window

PANELS = (("otcolor_pure.png", "pure map (--no-regrain)"), ("otcolor.png", "otcolor (regrain)"),
          ("emd.png", "POT EMD"))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folder", type=Path, help="a pair's folder written by benchmarks/pixels.py"
    )
    parser.add_argument("source", type=Path, help="the pair's source image")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--side", type=int, default=96, help="window side in pixels")
    parser.add_argument("--zoom", type=int, default=3)
    args = parser.parse_args(argv)

    src = np.asarray(Image.open(args.source).convert("RGB"))
    top, left = smoothest_window(src, args.side)
    crops = [("source", src)] + [
        (label, np.asarray(Image.open(args.folder / name).convert("RGB")))
        for name, label in PANELS
        if (args.folder / name).is_file()
    ]
    side, zoom, label_h = args.side, args.zoom, 18
    tile = side * zoom
    sheet = Image.new("RGB", (len(crops) * (tile + 4) - 4, tile + label_h), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (label, image) in enumerate(crops):
        crop = Image.fromarray(image[top : top + side, left : left + side])
        sheet.paste(crop.resize((tile, tile), Image.NEAREST), (k * (tile + 4), label_h))
        draw.text((k * (tile + 4) + 4, 3), label, fill="black")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output, quality=92)
    print(f"{args.output}: window {side}x{side} at (top {top}, left {left})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
