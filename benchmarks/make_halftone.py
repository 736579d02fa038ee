r"""Makes ``benchmarks/images/china_halftone.jpg``: a four-colour halftone print of a photo.

A halftone is the hardest case for the regrain's structure: the whole image is fine, regular
texture (ink dots) whose local mean is the colour. It is made deterministically from
``benchmarks/images/china.jpg`` (scikit-learn's sample image, CC BY 2.0):

1. the photo is upsampled 3× (bilinear) and separated into CMYK with full grey-component
   replacement, :math:`K = \min(C, M, Y)`, :math:`C' = C - K` (and so on);
2. each ink is screened with a round clustered dot on its own rotated grid (the classic angles
   C 15°, M 75°, Y 0°, K 45°, a period of 15 upsampled pixels, 5 output pixels): a pixel gets
   ink where the spot function :math:`(\cos 2\pi u/P + \cos 2\pi v/P)/2` exceeds
   :math:`1 - 2c` for ink coverage :math:`c`;
3. the inks multiply on white paper (cyan absorbs red, magenta green, yellow blue, black all);
4. 3×3 box means bring it back to the photo's size (a scan's anti-aliasing), and it is saved
   as a JPEG of quality 92.

Usage::

    python benchmarks/make_halftone.py [--source benchmarks/images/china.jpg] [--out ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
UP = 3  # supersampling factor
PERIOD = 15.0  # screen period in upsampled pixels
ANGLES = {"c": 15.0, "m": 75.0, "y": 0.0, "k": 45.0}


def screen(coverage: np.ndarray, angle: float) -> np.ndarray:
    r"""Binary ink of one separation, :math:`(H, W)` coverage in :math:`[0, 1]` → bool."""

    h, w = coverage.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    t = np.deg2rad(angle)
    u, v = x * np.cos(t) + y * np.sin(t), -x * np.sin(t) + y * np.cos(t)
    spot = (np.cos(2 * np.pi * u / PERIOD) + np.cos(2 * np.pi * v / PERIOD)) / 2
    return spot > 1 - 2 * coverage


def halftone(rgb: np.ndarray) -> np.ndarray:
    r"""The halftone print of ``rgb``, :math:`(H, W, 3)` uint8 → :math:`(H, W, 3)` uint8."""

    h, w = rgb.shape[:2]
    big = Image.fromarray(rgb).resize((w * UP, h * UP), Image.Resampling.BILINEAR)
    c, m, y = (1 - np.asarray(big, dtype=np.float64) / 255).transpose(2, 0, 1)
    k = np.minimum(np.minimum(c, m), y)
    coverage = dict(zip("cmyk", (c - k, m - k, y - k, k), strict=True))
    inks = {name: screen(cov, ANGLES[name]) for name, cov in coverage.items()}
    paper = np.ones((h * UP, w * UP, 3))
    paper[inks["c"], 0] *= 0.1
    paper[inks["m"], 1] *= 0.1
    paper[inks["y"], 2] *= 0.1
    paper[inks["k"]] *= 0.08
    small = paper.reshape(h, UP, w, UP, 3).mean(axis=(1, 3))
    return np.round(small * 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT / "benchmarks/images/china.jpg")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/images/china_halftone.jpg")
    args = parser.parse_args()
    rgb = np.asarray(Image.open(args.source).convert("RGB"))
    Image.fromarray(halftone(rgb)).save(args.out, quality=92)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
