r"""Apply throughput and peak memory of a saved map (``otcolor apply``), 8-bit route.

Fits the default map on the ocean pair once (or takes ``--map``), builds a photograph of the
requested size by upscaling ``examples/ocean_day.jpg`` (bicubic: it adds colours, as a real
large photo has), then, each in a fresh process so that peak RSS is that of one apply:

- ``map``: mapping only, decoded pixels in memory to mapped pixels in memory
  (:func:`otcolor.color.apply_look`, exact, every distinct colour evaluated once);
- ``command``: the whole ``otcolor apply MAP IN -o OUT`` (interpreter start, imports, decode,
  map, encode), timed from outside, peak RSS from ``getrusage`` of the child.

Usage: ``python benchmarks/apply_speed.py --megapixels 12 50 [--threads 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_MAP_ONLY = r"""
import json, resource, sys, time
from otcolor.color import apply_look
from otcolor.io import load_image
from otcolor.io.mapfile import load_map
look = load_map(sys.argv[1]).look
image = load_image(sys.argv[2], max_pixels=None)
start = time.perf_counter()
out = apply_look(look, image.rgb, bit_depth=image.bit_depth, as_uint8=True)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "megapixels": image.n_pixels / 1e6,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, nargs="+", default=[12.0, 50.0])
    parser.add_argument("--map", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output-format", default="jpg", choices=["jpg", "png", "bmp"])
    args = parser.parse_args()

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    otcolor = [sys.executable, "-m", "otcolor"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        map_file = args.map
        if map_file is None:
            map_file = tmp_path / "look.otmap"
            subprocess.run(
                [
                    *otcolor,
                    "transfer",
                    str(ROOT / "examples/ocean_day.jpg"),
                    str(ROOT / "examples/ocean_sunset.jpg"),
                    "-o",
                    str(tmp_path / "fit.png"),
                    "--save-map",
                    str(map_file),
                    "--device",
                    "cpu",
                    "--quiet",
                ],
                check=True,
                env=env,
            )
        from PIL import Image

        day = Image.open(ROOT / "examples/ocean_day.jpg").convert("RGB")
        rows = []
        for megapixels in args.megapixels:
            scale = (megapixels * 1e6 / (day.width * day.height)) ** 0.5
            size = (round(day.width * scale), round(day.height * scale))
            big = tmp_path / f"big_{megapixels:g}.png"
            day.resize(size, Image.Resampling.BICUBIC).save(big, compress_level=1)
            mapped = json.loads(
                subprocess.run(
                    [sys.executable, "-c", _MAP_ONLY, str(map_file), str(big)],
                    check=True,
                    env=env,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            out = tmp_path / f"out.{args.output_format}"
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            start = time.perf_counter()
            subprocess.run(
                [
                    *otcolor,
                    "apply",
                    str(map_file),
                    str(big),
                    "-o",
                    str(out),
                    "--force",
                    "--quiet",
                    "--max-pixels",
                    "200000000",
                ],
                check=True,
                env=env,
            )
            wall = time.perf_counter() - start
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            rows.append(
                {
                    "megapixels": round(mapped["megapixels"], 1),
                    "map_seconds": round(mapped["seconds"], 2),
                    "map_mp_per_s": round(mapped["megapixels"] / mapped["seconds"], 1),
                    "map_peak_rss_gb": round(mapped["peak_rss_gb"], 2),
                    "command_seconds": round(wall, 2),
                    "command_peak_rss_gb": round(max(peak, before) / 2**20, 2),
                }
            )
            print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
