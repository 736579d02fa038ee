r"""``otcolor video --map`` on 1080p clips: wall time against a plain x264 re-encode, temporal
change against the source clip's, and the distance of a graded frame to the approved still.

Three clips are made from one photo, resized to cover 1920x1080 (Lanczos), ``--frames`` frames
at 24 fps, encoded with libx264 CRF 18 yuv420p:

- ``static``: the same view, fresh Gaussian sensor noise (σ ``--noise`` levels) in every frame;
- ``moving``: the same, panning ``--pan`` pixels to the right per frame;
- ``held``: one noisy frame repeated, encoded losslessly (``-qp 0``), so the decoded frames are
  byte-identical: what the reuse of an identical frame's output saves.

Timings (wall, whole commands, subprocesses) alternate ``x264``, ``regrain`` (the default),
``pure`` (``--no-regrain``), ``--repeats`` times per clip; medians. ``x264`` is
``ffmpeg -i clip -c:v libx264 -crf 18 -pix_fmt yuv420p out.mp4``, the bar's plain re-encode.

Temporal change (:mod:`video_flicker`'s measures on the decoded clips, the pan undone):
``grain`` is the RMS pixel difference between consecutive frames, ``flicker`` the RMS
difference of 16x16 block means of luma; both as ratios over the source clip's.

The approved still: the middle frame of the decoded source, saved as PNG and recoloured by
``otcolor apply`` (which regrains as ``transfer`` did); the same frame of each graded clip is
compared with it (mean CIEDE2000), and the grain in the source's flattest blocks
(:func:`otcolor.bench.lutcheck.flat_noise`) is given for both. ``exact`` says whether the
frame as graded before encoding (:func:`otcolor.framepipe.grade_frames`) equals the still
byte for byte.

Usage::

    otcolor transfer examples/ocean_day.jpg examples/ocean_sunset.jpg -o /tmp/o.png \
        --save-map ocean.otmap
    OMP_NUM_THREADS=1 python benchmarks/video_speed.py ocean.otmap examples/ocean_day.jpg
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from video_flicker import _differences

from otcolor.bench.lutcheck import flat_noise
from otcolor.color import ColorTable
from otcolor.framepipe import grade_frames
from otcolor.io.mapfile import load_map
from otcolor.metrics import mean_ciede2000

WIDTH, HEIGHT, FPS = 1920, 1080, "24"


def _make_clip(photo: Path, path: Path, kind: str, frames: int, pan: int, noise: float) -> None:
    shift = pan if kind == "moving" else 0
    img = Image.open(photo).convert("RGB")
    wide = WIDTH + shift * (frames - 1)
    scale = max(wide / img.width, HEIGHT / img.height)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    top = (img.height - HEIGHT) // 2
    base = np.asarray(img, np.float32)[top : top + HEIGHT]
    rng = np.random.default_rng(0)
    quality = ["-qp", "0"] if kind == "held" else ["-crf", "18"]
    command = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"]
    command += ["-s", f"{WIDTH}x{HEIGHT}", "-framerate", FPS, "-i", "-", "-c:v", "libx264"]
    command += [*quality, "-pix_fmt", "yuv420p", str(path)]
    encoder = subprocess.Popen(command, stdin=subprocess.PIPE)
    assert encoder.stdin is not None
    frame = None
    for t in range(frames):
        if frame is None or kind != "held":
            view = base[:, t * shift : t * shift + WIDTH]
            noisy = view + rng.normal(0.0, noise, view.shape).astype(np.float32)
            frame = np.clip(np.round(noisy), 0, 255).astype(np.uint8).tobytes()
        encoder.stdin.write(frame)
    encoder.stdin.close()
    if encoder.wait() != 0:
        raise SystemExit(f"ffmpeg could not make {path}")


def _decode(path: Path) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, HEIGHT, WIDTH, 3)


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("map", type=Path)
    parser.add_argument("photo", type=Path)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--pan", type=int, default=4, help="pixels per frame of the moving clip")
    parser.add_argument("--noise", type=float, default=2.0, help="sensor noise, 8-bit levels")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per route and clip")
    parser.add_argument("--clips", default="static,moving,held")
    args = parser.parse_args(argv)

    look = load_map(args.map).look
    otcolor = [sys.executable, "-m", "otcolor", "video"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for kind in args.clips.split(","):
            clip = work / f"{kind}.mp4"
            _make_clip(args.photo, clip, kind, args.frames, args.pan, args.noise)
            out = {route: work / f"{kind}_{route}.mp4" for route in ("x264", "regrain", "pure")}
            commands = {
                "x264": ["ffmpeg", "-v", "error", "-y", "-i", str(clip), "-c:v", "libx264"]
                + ["-crf", "18", "-pix_fmt", "yuv420p", str(out["x264"])],
                "regrain": [*otcolor, str(clip), "--map", str(args.map)]
                + ["-o", str(out["regrain"]), "--force", "--quiet"],
                "pure": [*otcolor, str(clip), "--map", str(args.map), "--no-regrain"]
                + ["-o", str(out["pure"]), "--force", "--quiet"],
            }
            times: dict[str, list[float]] = {route: [] for route in commands}
            for _ in range(args.repeats):  # A B C A B C: the machine's load hits all alike
                for route, command in commands.items():
                    times[route].append(_timed(command))
            source = _decode(clip)
            pan = args.pan if kind == "moving" else 0
            grain_in, flicker_in = _differences(list(source), pan)
            middle = len(source) // 2
            still_in, still_out = work / "frame.png", work / "still.png"
            Image.fromarray(source[middle]).save(still_in)
            apply = [sys.executable, "-m", "otcolor", "apply", str(args.map), str(still_in)]
            subprocess.run([*apply, "-o", str(still_out), "--force", "--quiet"], check=True)
            still = np.asarray(Image.open(still_out).convert("RGB"))
            graded = next(grade_frames([source[middle]], ColorTable(look)))
            x264 = statistics.median(times["x264"])
            for route in commands:
                frames = _decode(out[route])
                grain, flicker = _differences(list(frames), pan)
                row = {
                    "clip": kind,
                    "route": route,
                    "seconds": statistics.median(times[route]),
                    "runs": times[route],
                    "vs_x264": statistics.median(times[route]) / x264,
                    # A held clip does not change at all: no ratio, the change itself.
                    "grain": grain / grain_in if grain_in else grain,
                    "flicker": flicker / flicker_in if flicker_in else flicker,
                    "delta_e_still": mean_ciede2000(frames[middle], still),
                    "flat_noise": flat_noise(source[middle], frames[middle]),
                }
                rows.append(row)
                print(
                    f"{kind:<7} {route:<8} {row['seconds']:7.1f} s ({row['vs_x264']:4.2f}x x264)"
                    f"  grain {row['grain']:5.2f}x  flicker {row['flicker']:5.2f}x"
                    f"  dE00 to still {row['delta_e_still']:5.2f}"
                    f"  flat noise {row['flat_noise']:5.2f}x",
                    flush=True,
                )
            exact = bool(np.array_equal(graded, still))
            rows.append({"clip": kind, "route": "still", "exact": exact,
                         "flat_noise": flat_noise(source[middle], still)})  # fmt: skip
            print(f"{kind:<7} still: flat noise {rows[-1]['flat_noise']:5.2f}x; graded frame "
                  f"before encoding == apply still: {exact}", flush=True)  # fmt: skip
    machine = {"cpus": os.cpu_count(), "omp": os.environ.get("OMP_NUM_THREADS")}
    print(json.dumps({"command": sys.argv, "machine": machine, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
