r"""Big-image benchmark: the whole ``otcolor transfer`` command on a generated 50-MP photo.

Generates a photo-like source (smooth gradients, texture and noise) of the requested size,
runs the command exactly as a user would, in a child process, and reports its wall time and
peak resident memory (the child's ``ru_maxrss``, from ``wait4``). The generator's own memory is
not counted.

    python benchmarks/bigimage.py                       # 50 MP, JPEG in and out, CPU
    python benchmarks/bigimage.py --megapixels 10 --format png -- --device cuda

Arguments after ``--`` are passed to ``otcolor transfer``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "examples" / "ocean_sunset.jpg"


def make_source(path: Path, megapixels: float, seed: int = 0) -> tuple[int, int]:
    r"""Writes a 3:2 photo-like image of about ``megapixels`` million pixels; returns (W, H)."""

    height = int(math.sqrt(megapixels * 1e6 / 1.5))
    width = round(megapixels * 1e6 / height)
    rng = np.random.default_rng(seed)
    pixels = np.empty((height, width, 3), np.uint8)
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)
    mix = rng.uniform(0.2, 1.0, (3, 3)).astype(np.float32)
    for top in range(0, height, 512):  # in strips: the generator stays small
        y = np.linspace(
            top / height, min(top + 512, height) / height, min(512, height - top), dtype=np.float32
        )[:, None]
        base = (
            np.stack(
                [
                    np.broadcast_to(x, (len(y), width)),
                    np.broadcast_to(y, (len(y), width)),
                    0.5 + 0.5 * np.sin(12 * x) * np.cos(9 * y),
                ],
                -1,
            )
            @ mix
        )
        base = 0.1 + 0.8 * base / 2.5 + 0.02 * rng.standard_normal(base.shape, np.float32)
        pixels[top : top + len(y)] = np.clip(base * 255, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=92)
    return width, height


def run_command(command: list[str], env: dict[str, str]) -> tuple[int, float, float, str, str]:
    r"""Runs ``command``; returns its exit code, wall seconds, peak RSS (GB), stdout, stderr."""

    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    peak_gb = usage.ru_maxrss * 1024 / 1e9  # Linux reports kilobytes
    return child.returncode, seconds, peak_gb, stdout, stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megapixels", type=float, default=50.0)
    parser.add_argument(
        "--format",
        default="jpg",
        choices=["jpg", "png", "tif", "webp"],
        help="output format (the source is always a JPEG)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to write the images (default: a temporary folder)",
    )
    parser.add_argument("extra", nargs="*", help="extra otcolor transfer options, after --")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        source, output = workdir / "big_source.jpg", workdir / f"big_output.{args.format}"
        start = time.perf_counter()
        width, height = make_source(source, args.megapixels)
        print(
            f"source {width}x{height} = {width * height / 1e6:.1f} MP, "
            f"{source.stat().st_size / 1e6:.1f} MB JPEG, made in "
            f"{time.perf_counter() - start:.1f} s",
            file=sys.stderr,
        )

        command = [
            sys.executable,
            "-m",
            "otcolor",
            "transfer",
            str(source),
            str(TARGET),
            "-o",
            str(output),
            "--json",
            "--force",
            *args.extra,
        ]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        code, seconds, peak_gb, stdout, stderr = run_command(command, env)
        if code != 0:
            print(stderr, file=sys.stderr)
            raise SystemExit(f"otcolor exited with {code}")
        result = json.loads(stdout)
        report = {
            "megapixels": round(width * height / 1e6, 2),
            "size": [width, height],
            "output": output.suffix,
            "output_mb": round(output.stat().st_size / 1e6, 1),
            "wall_seconds": round(seconds, 1),
            "fit_seconds": round(result["fit_seconds"], 1),
            "peak_rss_gb": round(peak_gb, 2),
            "bytes_per_pixel": round(peak_gb * 1e9 / (width * height), 1),
            "device": result["device"],
            "command": " ".join(["otcolor", *command[3:]]),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
            "versions": result["versions"],
        }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
