r"""Fingerprints every route's output, to show that a refactor changed no number.

Runs a fixed set of ``otcolor`` commands (transfer in its looks, apply, lut, video, preview and
each ``bench`` with few steps) into a folder and prints one JSON object: the SHA-256 of every
file written and every metric of the ``--json`` reports, with timings, paths and versions left
out. Run it before and after a change and diff the two files::

    python benchmarks/refactor_check.py OUT_BEFORE > before.json
    # ... change the code ...
    python benchmarks/refactor_check.py OUT_AFTER > after.json
    diff before.json after.json && echo identical

Map files hold the otcolor version and the provenance, so they are compared by their tensors
and look (``load_map``), not byte for byte. About 3 minutes on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAY, SUNSET = ROOT / "examples/ocean_day.jpg", ROOT / "examples/ocean_sunset.jpg"
CHELSEA = ROOT / "benchmarks/images/chelsea.jpg"
#: Keys whose values vary between runs or machines.
VOLATILE = {"seconds", "fit_seconds", "apply_seconds", "machine", "versions", "output", "outputs",
            "saved_map", "lut", "map", "wall", "source", "target", "out", "path", "git_commit"}  # fmt: skip


def scrub(value: object) -> object:
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.10g}")
    return value


def run(out: Path, name: str, *args: object) -> object:
    command = [sys.executable, "-m", "otcolor", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=out, check=False)
    if done.returncode != 0:
        return {"exit": done.returncode, "stderr": done.stderr.strip().splitlines()[-1:]}
    try:
        return scrub(json.loads(done.stdout)) if "--json" in command else None
    except json.JSONDecodeError:
        return {"stdout": done.stdout[-200:]}


def digest(path: Path) -> str:
    if path.suffix == ".otmap":
        sys.path.insert(0, str(ROOT))
        from otcolor.io.mapfile import load_map

        look = load_map(path).look
        h = hashlib.sha256()
        for name, tensor in sorted(look.map.state_dict().items()):
            h.update(name.encode() + tensor.numpy().tobytes())
        settings = {k: v for k, v in vars(look).items() if k not in ("map", "device")}
        h.update(repr(sorted((k, repr(v)) for k, v in settings.items())).encode())
        return h.hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "refactor-check").resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    reports: dict[str, object] = {}
    t = ["transfer", DAY, SUNSET, "--json"]
    reports["default"] = run(out, "default", *t, "-o", "default.png", "--save-map", "default.otmap",
                             "--lut", "default.cube")  # fmt: skip
    reports["pure"] = run(out, "pure", *t, "-o", "pure.png", "--no-regrain", "--save-map",
                          "pure.otmap")  # fmt: skip
    reports["half"] = run(out, "half", *t, "-o", "half.png", "--strength", "0.5", "--save-map",
                          "half.otmap")  # fmt: skip
    reports["lab"] = run(out, "lab", *t, "-o", "lab.png", "--space", "lab", "--no-regrain",
                         "--save-map", "lab.otmap")  # fmt: skip
    reports["sliced"] = run(
        out, "sliced", *t, "-o", "sliced.png", "--loss", "sliced", "--steps", 40
    )
    reports["wgan"] = run(out, "wgan", *t, "-o", "wgan.png", "--loss", "wgan", "--steps", 40,
                          "--model", "mmgn", "--no-regrain")  # fmt: skip
    reports["plan"] = run(out, "plan", *t, "-o", "plan.png", "--estimator", "plan", "--steps", 40,
                          "--model", "icnn")  # fmt: skip
    reports["kl"] = run(out, "kl", *t, "-o", "kl.png", "--loss", "kl", "--steps", 40, "--seed", 3)
    for name in ("default", "pure", "half", "lab"):
        reports[f"apply-{name}"] = run(out, "apply", "apply", f"{name}.otmap", DAY, "-o",
                                       f"apply-{name}.png", "--json")  # fmt: skip
    reports["apply-pure-flag"] = run(out, "apply", "apply", "default.otmap", CHELSEA,
                                     "--no-regrain", "-o", "apply-flag.png", "--json")  # fmt: skip
    reports["lut"] = run(out, "lut", "lut", "pure.otmap", "-o", "pure.cube", "--json")
    reports["lut-csp"] = run(out, "lut", "lut", "default.otmap", "-o", "default.csp", "--json")
    clip = out / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=96x64:rate=8:duration=1", "-pix_fmt", "yuv420p", str(clip)],
                   check=True)  # fmt: skip
    reports["video-fit"] = run(out, "video", "video", clip, SUNSET, "-o", "video-fit.mp4",
                               "--save-map", "video.otmap", "--json", "--steps", 30)  # fmt: skip
    reports["video-map"] = run(out, "video", "video", clip, "--map", "pure.otmap", "-o",
                               "video-map.mp4", "--json")  # fmt: skip
    reports["video-regrain"] = run(out, "video", "video", clip, "--map", "pure.otmap",
                                   "--regrain", "-o", "video-regrain.mp4", "--json")  # fmt: skip
    reports["preview"] = run(out, "preview", "preview", DAY, SUNSET, "-o", "preview.png",
                             "--smoothness", "0,4", "--steps", 30, "--json")  # fmt: skip
    reports["bench-gaussian"] = run(out, "b", "bench", "gaussian", "--dim", 3, "--steps", 30,
                                    "--out", "bg", "--json")  # fmt: skip
    reports["bench-gmm"] = run(out, "b", "bench", "gmm", "--steps", 30, "--model", "cmgn",
                               "--out", "bm", "--json")  # fmt: skip
    reports["bench-pixels"] = run(out, "b", "bench", "pixels", "--steps", 30, "--loss", "sliced",
                                  "--model", "cmgn", "--out", "bp", "--json")  # fmt: skip
    reports["bench-known"] = run(out, "b", "bench", "known", "--model", "cmgn", "--steps", 30,
                                 "--out", "bk", "--json")  # fmt: skip
    files = {
        str(p.relative_to(out)): digest(p)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.suffix in {".png", ".otmap", ".cube", ".csp", ".mp4"}
        and p.name != "clip.mp4"
    }  # fmt: skip
    # Video containers hold the encoder's version string, not otcolor's: hash decoded frames.
    for video in sorted(out.glob("video-*.mp4")):
        frames = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-f", "rawvideo", "-"],
                                capture_output=True, check=True).stdout  # fmt: skip
        files[video.name] = hashlib.sha256(frames).hexdigest()
    json.dump({"reports": reports, "files": files}, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
