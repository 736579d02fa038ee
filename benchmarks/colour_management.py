r"""Colour management benchmark: tagged files against the convert-first result (issue 27).

For each photo pair and each pair of profiles, the two images are written as files a
photographer has (converted into the profile and tagged with it), then

* **reference**: both files converted to sRGB first, untagged, then ``otcolor transfer`` (seeds 0
  and 1: the seed-to-seed difference is the noise a result is judged against);
* **otcolor**: ``otcolor transfer`` on the tagged files directly (seed 0);
* **before**: what otcolor 0.1 did: the tagged files' numbers fitted as if they were sRGB and the
  output stamped with the source's profile.

Every output is read as a colour-managed viewer shows it (converted from its own profile to sRGB,
then CIELAB) and compared with CIEDE2000; chroma is the mean :math:`C^*_{ab}`. The bar of
issue 27: mean ΔE00 ≤ max(1.0, 1.25 × the seed-to-seed difference), chroma within 5 %.
A 16-bit ProPhoto TIFF source also reports its output's distinct levels per channel.

Run from the checkout (about 10 minutes on 2 cores)::

    OMP_NUM_THREADS=1 python benchmarks/colour_management.py [--out DIR] [--pairs ocean chelsea]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from otcolor.bench.pixels import DEFAULT_PAIRS
from otcolor.io import load_image
from otcolor.io.profiles import from_working, named_profile
from otcolor.metrics import ciede2000
from otcolor.spaces import srgb_to_lab

#: (source profile, target profile, file suffix): phones' P3, cameras' Adobe RGB, raw
#: converters' ProPhoto 16-bit TIFF.
CASES = [
    ("display-p3", "srgb", ".jpg"),
    ("adobe-rgb", "display-p3", ".jpg"),
    ("prophoto", "adobe-rgb", ".tif"),
]


def write_tagged(path: Path, srgb: np.ndarray, profile_name: str) -> Path:
    profile = named_profile(profile_name)
    values = from_working(srgb, profile)
    if path.suffix == ".tif":  # 16-bit, as raw converters export
        samples = np.round(values * 65535).astype(np.uint16)
        tags = [(34675, "B", 0, profile.icc, True)]
        tifffile.imwrite(path, samples, photometric="rgb", extratags=tags)
    else:
        pixels = np.round(values * 255).astype(np.uint8)
        Image.fromarray(pixels).save(path, quality=95, icc_profile=profile.icc)
    return path


def transfer(source: Path, target: Path, output: Path, seed: int) -> float:
    command = [sys.executable, "-m", "otcolor", "transfer", str(source), str(target), "-o",
               str(output), "--seed", str(seed), "--force", "--quiet"]  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{command}: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - began


def viewed_lab(path: Path) -> np.ndarray:
    r"""The file as a colour-managed viewer shows it, in CIELAB."""

    return srgb_to_lab(load_image(path).rgb.reshape(-1, 3))


def chroma(lab: np.ndarray) -> float:
    return float(np.hypot(lab[:, 1], lab[:, 2]).mean())


def run_case(tmp: Path, pair: str, source: Path, target: Path, case: tuple) -> dict:
    source_profile, target_profile, suffix = case
    work = tmp / f"{pair}-{source_profile}"
    work.mkdir()
    src_rgb, tgt_rgb = load_image(source).rgb, load_image(target).rgb
    tagged_src = write_tagged(work / f"source{suffix}", src_rgb, source_profile)
    tagged_tgt = write_tagged(work / "target.jpg", tgt_rgb, target_profile)
    first = {}
    for name, path in (("source", tagged_src), ("target", tagged_tgt)):
        first[name] = work / f"{name}-srgb.png"
        pixels = np.round(load_image(path).rgb * 255).astype(np.uint8)
        Image.fromarray(pixels).save(first[name])
    out_suffix = ".tif" if suffix == ".tif" else ".png"
    reference = [work / f"reference{seed}.png" for seed in (0, 1)]
    for seed, path in enumerate(reference):
        transfer(first["source"], first["target"], path, seed)
    ours = work / f"out{out_suffix}"
    seconds = transfer(tagged_src, tagged_tgt, ours, 0)
    # Before: the numbers as sRGB (an untagged copy), the output stamped with the profile.
    numbers = {}
    for name, path in (("source", tagged_src), ("target", tagged_tgt)):
        numbers[name] = work / f"{name}-numbers{path.suffix}"
        if path.suffix == ".tif":
            tifffile.imwrite(numbers[name], tifffile.imread(path), photometric="rgb")
        else:
            Image.fromarray(np.asarray(Image.open(path))).save(numbers[name], quality=95)
    before = work / f"before{out_suffix}"
    transfer(numbers["source"], numbers["target"], before, 0)
    stamped = work / f"before-stamped{out_suffix}"
    icc = named_profile(source_profile).icc
    if out_suffix == ".tif":
        tifffile.imwrite(stamped, tifffile.imread(before), photometric="rgb",
                         extratags=[(34675, "B", 0, icc, True)])  # fmt: skip
    else:
        Image.open(before).save(stamped, icc_profile=icc)

    ref0, ref1 = viewed_lab(reference[0]), viewed_lab(reference[1])
    mine, old = viewed_lab(ours), viewed_lab(stamped)
    seed_noise = float(ciede2000(ref0, ref1).mean())
    error = ciede2000(ref0, mine)
    row = {
        "pair": pair,
        "source": f"{source_profile}{suffix}",
        "target": target_profile,
        "delta_e": float(error.mean()),
        "delta_e_p95": float(np.percentile(error, 95)),
        "chroma_ratio": chroma(mine) / chroma(ref0),
        "seed_delta_e": seed_noise,
        "bar": max(1.0, 1.25 * seed_noise),
        "before_delta_e": float(ciede2000(ref0, old).mean()),
        "before_chroma_ratio": chroma(old) / chroma(ref0),
        "seconds": seconds,
    }
    if out_suffix == ".tif":
        out = tifffile.imread(ours)
        row["levels"] = [int(len(np.unique(out[..., c]))) for c in range(3)]
        row["bits"] = int(out.dtype.itemsize * 8)
    row["met"] = row["delta_e"] <= row["bar"] and abs(row["chroma_ratio"] - 1) <= 0.05
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| pair | source | target | ΔE00 mean (p95) | chroma | seed ΔE00 | bar | met | before |",
        "|---|---|---|---:|---:|---:|---:|---|---:|",
    ]  # fmt: skip
    for r in rows:
        levels = f", {r['bits']}-bit out, levels {r['levels']}" if "levels" in r else ""
        lines.append(
            f"| {r['pair']} | {r['source']}{levels} | {r['target']} | {r['delta_e']:.2f} "
            f"({r['delta_e_p95']:.2f}) | {r['chroma_ratio']:.3f} | {r['seed_delta_e']:.2f} | "
            f"{r['bar']:.2f} | {'yes' if r['met'] else 'no'} | {r['before_delta_e']:.2f}, "
            f"{r['before_chroma_ratio']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/output/colour")
    parser.add_argument("--pairs", nargs="*", default=list(DEFAULT_PAIRS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for pair in args.pairs:
            source, target = (ROOT / p for p in DEFAULT_PAIRS[pair])
            for case in CASES:
                rows.append(run_case(Path(folder), pair, source, target, case))
                print(json.dumps(rows[-1]), flush=True)
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, Python {platform.python_version()}"
    )
    (args.out / "results.json").write_text(
        json.dumps({"machine": machine, "rows": rows}, indent=1)
    )
    text = table(rows) + f"\nMachine: {machine}.\n"
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
