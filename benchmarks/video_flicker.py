r"""Flicker of the pure map and of the regrain on a static and on a moving synthetic clip.

A clip is made from one photo: ``--frames`` frames, each with fresh Gaussian sensor noise
(σ ``--noise`` levels) and then rounded to 8 bits; the static clip repeats the same view, the
moving one pans ``--pan`` pixels to the right per frame. Every frame goes through the map
(``otcolor.color.apply_look``, one colour table for all frames, as ``otcolor video`` does) and
through the regrain (``otcolor.regrain.regrain``, frame by frame). Frame-to-frame differences
are taken on the overlap of consecutive views (the pan undone), and reported as ratios over
the same difference in the input clip:

- ``grain``: RMS of the pixel difference (temporal noise: 1 = passed through, > 1 amplified);
- ``flicker``: RMS of the difference of 16x16 block means of luma: the visible, low-frequency
  brightness change of regions between frames (grain averages out).

Usage::

    otcolor transfer examples/ocean_day.jpg examples/ocean_sunset.jpg -o /tmp/o.png \
        --save-map ocean.otmap
    python benchmarks/video_flicker.py ocean.otmap examples/ocean_day.jpg
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from otcolor.color import ColorTable, apply_look
from otcolor.io import load_image
from otcolor.io.mapfile import load_map
from otcolor.metrics import LUMA
from otcolor.regrain import regrain

BLOCK = 16


def _clip(photo: np.ndarray, frames: int, pan: int, noise: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    width = photo.shape[1] - pan * (frames - 1)
    views = []
    for t in range(frames):
        view = photo[:, t * pan : t * pan + width].astype(np.float64)
        view = view + rng.normal(0.0, noise, view.shape)
        views.append(np.clip(np.round(view), 0, 255).astype(np.uint8))
    return views


def _blocks(img: np.ndarray) -> np.ndarray:
    luma = img.astype(np.float64) @ np.asarray(LUMA)
    h, w = (luma.shape[0] // BLOCK) * BLOCK, (luma.shape[1] // BLOCK) * BLOCK
    return luma[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).mean((1, 3))


def _differences(frames: list[np.ndarray], pan: int) -> tuple[float, float]:
    grain, flicker = [], []
    for prev, cur in pairwise(frames):
        # The same scene points: cur column x shows what prev showed at x + pan.
        a, b = prev[:, pan:].astype(np.float64), cur[:, : cur.shape[1] - pan].astype(np.float64)
        grain.append(np.mean((a - b) ** 2))
        flicker.append(np.mean((_blocks(a) - _blocks(b)) ** 2))
    return float(np.sqrt(np.mean(grain))), float(np.sqrt(np.mean(flicker)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("map", type=Path)
    parser.add_argument("photo", type=Path)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--pan", type=int, default=4, help="pixels per frame of the moving clip")
    parser.add_argument("--noise", type=float, default=2.0, help="sensor noise, 8-bit levels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    look = load_map(args.map).look
    photo = load_image(args.photo).rgb
    photo = np.round(photo * 255).astype(np.uint8) if photo.dtype != np.uint8 else photo
    rows = []
    for clip_name, pan in (("static", 0), ("moving", args.pan)):
        clip = _clip(photo, args.frames, pan, args.noise, args.seed)
        grain_in, flicker_in = _differences(clip, pan)
        table = ColorTable(look)
        routes = {
            "pure map": [apply_look(look, f, table=table, as_uint8=True) for f in clip],
            "regrain": [
                np.round(regrain(look, f, table=table) * 255).astype(np.uint8) for f in clip
            ],
        }
        for route, frames in routes.items():
            grain, flicker = _differences(frames, pan)
            rows.append({"clip": clip_name, "route": route, "grain": grain / grain_in,
                         "flicker": flicker / flicker_in})  # fmt: skip
            print(f"{clip_name:<7} {route:<9} grain {grain / grain_in:6.2f}x  "
                  f"flicker {flicker / flicker_in:6.2f}x")  # fmt: skip
    print(json.dumps({"command": sys.argv, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
