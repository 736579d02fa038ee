r"""How closely exported LUTs, read by FFmpeg's ``lut3d`` and OpenColorIO, reproduce the pure map.

For each pair: fit the default look (``otcolor transfer --save-map``), write the pure map's
output for the source with ``otcolor apply --no-regrain`` (PNG), export the look with
``otcolor lut`` as ``.cube`` and ``.csp`` at each size, apply every file with
:func:`otcolor.bench.lutcheck.apply_ffmpeg` and :func:`otcolor.bench.lutcheck.apply_ocio` (tetrahedral)
and score the pixels by their largest channel difference to otcolor's output.

Usage: ``python benchmarks/lut_readers.py [--pairs SRC:TGT ...] [--sizes 33] [--json]``
(pairs name bundled images, ``otcolor.data``, or paths).
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
            otcolor(
                "apply", str(look), str(source), "-o", str(pure_path), "--no-regrain", "--force"
            )
            pure = np.asarray(Image.open(pure_path).convert("RGB"))
            rgb = np.asarray(Image.open(source).convert("RGB"))
            for size in args.sizes:
                for fmt in ("cube", "csp"):
                    lut = tmp / f"look{size}.{fmt}"
                    began = time.perf_counter()
                    otcolor("lut", str(look), "-o", str(lut), "--size", str(size), "--force")
                    seconds = time.perf_counter() - began
                    for reader, apply in (("ffmpeg", apply_ffmpeg), ("ocio", apply_ocio)):
                        score = agreement(apply(lut, rgb), pure)
                        rows.append(
                            {
                                "pair": pair,
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
    print("| pair | size | file | reader | within 2/255 | within 1/255 | p99 | max | export |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['pair']} | {r['size']} | .{r['format']} | {r['reader']} "
            f"| {100 * r['within_2']:.2f} % | {100 * r['within_1']:.1f} % | {r['p99']:g} "
            f"| {r['max']:g} | {r['export_s']:.1f} s |"
        )


if __name__ == "__main__":
    main()
