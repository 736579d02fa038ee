r"""How closely exported LUTs, read by FFmpeg's ``lut3d`` and OpenColorIO, reproduce the pure map.

For each pair: fit the default look (``otcolor transfer --save-map``), write the pure map's
output for the source with ``otcolor apply --no-regrain`` (PNG), export the pure map with
``otcolor lut --pure`` as ``.cube`` and ``.csp`` at each size, apply every file with
:func:`otcolor.bench.lutcheck.apply_ffmpeg` and :func:`otcolor.bench.lutcheck.apply_ocio` (tetrahedral)
and score the pixels by their largest channel difference to otcolor's output. With
``--others``, the same files are also scored on other images (each against its own
``apply --no-regrain``): a LUT tuned to the source's colours alone would fail there.

Usage: ``python benchmarks/lut_readers.py [--pairs SRC:TGT ...] [--sizes 33] [--others IMG ...]
[--json]`` (pairs and images name bundled images, ``otcolor.data``, or paths).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from otcolor.bench.lutcheck import agreement, apply_ffmpeg, apply_ocio
from otcolor.data import image_path

PAIRS = ["ocean_day:ocean_sunset", "astronaut:coffee", "chelsea:rocket"]


def otcolor(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "otcolor", *args], check=True, stdout=subprocess.DEVNULL)


def resolve(name: str) -> Path:
    path = Path(name)
    return path if path.exists() else Path(image_path(f"{name}.jpg"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", nargs="+", default=PAIRS)
    parser.add_argument("--sizes", nargs="+", type=int, default=[33])
    parser.add_argument("--others", nargs="*", default=[], help="images to score the LUTs on too")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for pair in args.pairs:
            source, target = (resolve(p) for p in pair.split(":"))
            look, pure_path = tmp / "look.otmap", tmp / "pure.png"
            otcolor(
                "transfer",
                str(source),
                str(target),
                "-o",
                str(tmp / "out.png"),
                "--save-map",
                str(look),
                "--device",
                "cpu",
                "--quiet",
                "--force",
            )
            images = {}
            for name in [str(source), *args.others]:
                path = resolve(name)
                if name != str(source) and path == source:
                    continue
                otcolor(
                    "apply", str(look), str(path), "-o", str(pure_path), "--no-regrain", "--force"
                )
                images["source" if name == str(source) else path.stem] = (
                    np.asarray(Image.open(path).convert("RGB")),
                    np.asarray(Image.open(pure_path).convert("RGB")),
                )
            for size in args.sizes:
                for fmt in ("cube", "csp"):
                    lut = tmp / f"look{size}.{fmt}"
                    began = time.perf_counter()
                    otcolor(
                        "lut", str(look), "-o", str(lut), "--size", str(size), "--pure", "--force"
                    )
                    seconds = time.perf_counter() - began
                    for image, (rgb, pure) in images.items():
                        for reader, apply in (("ffmpeg", apply_ffmpeg), ("ocio", apply_ocio)):
                            score = agreement(apply(lut, rgb), pure)
                            rows.append(
                                {
                                    "pair": pair,
                                    "image": image,
                                    "size": size,
                                    "format": fmt,
                                    "reader": reader,
                                    "export_s": seconds,
                                    **score,
                                }
                            )
    if args.json:
        print(json.dumps(rows))
        return
    print("| pair | image | size | file | reader | d ≤ 2 | d ≤ 1 | p99 of d | max d | export |")
    print("|---|---|---:|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['pair']} | {r['image']} | {r['size']} | .{r['format']} | {r['reader']} "
            f"| {100 * r['within_2']:.2f} % | {100 * r['within_1']:.1f} % | {r['p99']:g} "
            f"| {r['max']:g} | {r['export_s']:.1f} s |"
        )


if __name__ == "__main__":
    main()
