r"""How closely a baked ``.cube`` LUT, applied by FFmpeg's ``lut3d``, reproduces otcolor.

Fits the default look on a pair (the ocean pair by default) with ``otcolor transfer
--save-map``, writes otcolor's own output for the source (saved as PNG first: FFmpeg decodes
JPEG through its own YUV path), bakes the map with ``otcolor lut`` at each size and method,
applies every LUT with ``ffmpeg -vf lut3d=file=...:interp=...`` and counts the pixels whose
largest channel difference to otcolor's output is within 1/255 and 2/255.

Usage: ``python benchmarks/lut_ffmpeg.py [--pair SRC TGT] [--sizes 17 33 65]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def otcolor(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "otcolor", *args], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pair",
        nargs=2,
        default=[str(ROOT / "examples/ocean_day.jpg"), str(ROOT / "examples/ocean_sunset.jpg")],
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=[17, 33, 65])
    parser.add_argument("--methods", nargs="+", default=["nodes", "fit"])
    parser.add_argument("--interps", nargs="+", default=["tetrahedral", "trilinear"])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        sys.exit("ffmpeg is not on PATH")
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "source.png"
        Image.open(args.pair[0]).convert("RGB").save(source)
        look, ours_path = tmp / "look.otmap", tmp / "ours.png"
        otcolor(
            "transfer",
            str(source),
            args.pair[1],
            "-o",
            str(ours_path),
            "--save-map",
            str(look),
            "--device",
            "cpu",
        )
        ours = np.asarray(Image.open(ours_path).convert("RGB")).astype(int)
        for size in args.sizes:
            for method in args.methods:
                cube = tmp / f"look{size}{method}.cube"
                otcolor("lut", str(look), "-o", str(cube), "--size", str(size), "--method", method)
                for interp in args.interps:
                    out = tmp / "ffmpeg.png"
                    subprocess.run(
                        [
                            "ffmpeg",
                            "-v",
                            "error",
                            "-y",
                            "-i",
                            str(source),
                            "-vf",
                            f"lut3d=file={cube}:interp={interp}",
                            "-pix_fmt",
                            "rgb24",
                            str(out),
                        ],
                        check=True,
                    )
                    theirs = np.asarray(Image.open(out).convert("RGB")).astype(int)
                    diff = np.abs(theirs - ours).max(-1)
                    rows.append(
                        {
                            "size": size,
                            "method": method,
                            "interp": interp,
                            "within_1": float((diff <= 1).mean()),
                            "within_2": float((diff <= 2).mean()),
                            "max": int(diff.max()),
                        }
                    )
    if args.json:
        print(json.dumps(rows))
        return
    print("| size | entries | ffmpeg interp | within 2/255 | within 1/255 | max |")
    print("|---:|---|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['size']} | {r['method']} | {r['interp']} | {100 * r['within_2']:.1f} % "
            f"| {100 * r['within_1']:.1f} % | {r['max']}/255 |"
        )


if __name__ == "__main__":
    main()
