r"""Why a 33-point LUT misses a steep look, and which shaper follows it: the design table.

For each pair: fit the default look (``otcolor transfer --save-map``), then

- ``--why``: where the plain 33-point table (fitted over the cube, tetrahedral) misses the
  pure map by more than 2/255 on the source: the misses' input colours (5th to 95th percentile
  per channel), the map's largest gain there (top singular value of its Jacobian) against the
  hits', the share of misses whose unclipped output leaves [0, 1], and the best any 33-point
  table can do on this image (least squares on the source's own colours, entries clipped or
  not, tetrahedral);
- the shaper table: each shaper's 33-point table (:func:`otcolor.io.lut.fit_lut` in shaped
  coordinates, for tetrahedral and trilinear readers unless ``tetra``) read tetrahedrally by
  otcolor (what OpenColorIO computes: ``benchmarks/lut_readers.py`` checks the readers
  themselves), scored as the share of pixels within 2/255 of the pure map, on the source and on
  other images (``--others``): a shaper that only suits the source's colours fails there.

Usage: ``python benchmarks/lut_shapers.py [--pairs SRC:TGT ...] [--others IMG ...] [--why]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from otcolor.data import image_path
from otcolor.io.lattice import interpolation_matrix, read_table
from otcolor.io.lut import bake_lut, fit_lut
from otcolor.io.mapfile import load_map
from otcolor.io.shaper import (
    IDENTITY,
    SHAPER_SIDES,
    SHAPER_STRENGTHS,
    DensityShaper,
    Shaper,
    bend_profile,
    choose_shaper,
    density_shaper,
)
from otcolor.look import Look, evaluate_map
from otcolor.spaces import from_space, to_space

PAIRS = ["ocean_day:ocean_sunset", "astronaut:coffee", "chelsea:rocket"]
OTHERS = ["ocean_day", "ocean_sunset", "astronaut", "coffee", "chelsea", "rocket"]


def resolve(name: str) -> Path:
    path = Path(name)
    return path if path.exists() else Path(image_path(f"{name}.jpg"))


def colours(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(np.float32) / 255


def within_2(look: Look, table: np.ndarray, shaper: Shaper, rgb: np.ndarray) -> float:
    r"""Share of colours whose tetrahedral reading is within 2/255 of the look (both rounded)."""

    read = read_table(table, rgb if shaper.is_identity else shaper(rgb))
    miss = np.abs(np.round(read * 255) - np.round(look(rgb) * 255)).max(1)
    return float(np.mean(miss <= 2))


def best_log(look: Look, size: int, points: int = 200_000, rounds: int = 2) -> Shaper:
    r"""The log family's choice as otcolor made it before the density shaper: coordinate
    descent scored on colours uniform over the cube."""

    sample = np.random.default_rng(0).random((points, 3)).astype(np.float32)
    truth = look(sample).astype(np.float64)

    def error(shaper: Shaper) -> float:
        table = bake_lut(look, size, shaper).reshape(-1, 3).astype(np.float64)
        read = interpolation_matrix(shaper(sample), size, "tetrahedral")
        miss = np.abs(read @ table - truth).max(1)
        return float(np.mean(miss > 1.5 / 255) + np.mean(miss**2))

    chosen, best = IDENTITY, error(IDENTITY)
    for _ in range(rounds):
        for channel in range(3):
            for a in SHAPER_STRENGTHS:
                for side in SHAPER_SIDES:
                    strengths, sides = list(chosen.strengths), list(chosen.sides)
                    strengths[channel], sides[channel] = a, side
                    trial = Shaper(tuple(strengths), tuple(sides))  # type: ignore[arg-type]
                    value = error(trial)
                    if value < best * (1 - 1e-6):
                        best, chosen = value, trial
    return chosen


def why(look: Look, rgb: np.ndarray) -> None:
    from scipy import sparse
    from scipy.sparse.linalg import cg

    table = fit_lut(look, 33, kinds=("tetrahedral",))
    truth = np.round(look(rgb) * 255)
    miss = np.abs(np.round(read_table(table, rgb) * 255) - truth).max(1) > 2
    print(f"  plain 33, fitted over the cube: {100 * (1 - miss.mean()):.2f} % within 2/255")
    if miss.sum() < 10:
        return
    low, high = np.percentile(rgb[miss] * 255, [5, 95], axis=0)
    print(f"  misses' input, 5th-95th percentile (R, G, B): {low.round()} - {high.round()}")

    def raw(c: np.ndarray) -> np.ndarray:
        u = to_space(c.astype(np.float32), look.space)
        return from_space(evaluate_map(look.map, u), look.space)

    rng = np.random.default_rng(0)
    for name, mask in (("misses", miss), ("hits", ~miss)):
        pick = rng.choice(np.flatnonzero(mask), min(3000, int(mask.sum())), replace=False)
        c, step = rgb[pick], 2 / 255
        jac = np.stack(
            [
                (look(np.clip(c + step * e, 0, 1)) - look(np.clip(c - step * e, 0, 1)))
                / (2 * step)
                for e in np.eye(3, dtype=np.float32)
            ],
            2,
        )
        top = np.linalg.svd(jac, compute_uv=False)[:, 0]
        out = raw(c)
        clipped = ((out < -0.5 / 255) | (out > 1 + 0.5 / 255)).any(1).mean()
        print(
            f"  {name}: largest gain median {np.median(top):.2f}, 90th percentile "
            f"{np.percentile(top, 90):.2f}; unclipped output outside [0, 1]: {100 * clipped:.1f} %"
        )
    unique, inverse, counts = np.unique(rgb, axis=0, return_inverse=True, return_counts=True)
    read = interpolation_matrix(unique, 33, "tetrahedral")
    nodes = bake_lut(look, 33).reshape(-1, 3).astype(np.float64)
    normal = read.T @ sparse.diags(counts.astype(float)) @ read + 1e-3 * sparse.identity(33**3)
    rhs = read.T @ (counts[:, None] * look(unique).astype(np.float64)) + 1e-3 * nodes
    fitted = np.stack(
        [cg(normal, rhs[:, c], x0=nodes[:, c], rtol=1e-10, maxiter=3000)[0] for c in range(3)], 1
    )
    for name, entries in (("unclipped", fitted), ("clipped", np.clip(fitted, 0, 1))):
        ours = np.round(read @ entries * 255)[inverse.ravel()]
        share = np.mean(np.abs(ours - truth).max(1) <= 2)
        print(f"  best 33-point table for this image ({name} entries): {100 * share:.2f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", nargs="+", default=PAIRS)
    parser.add_argument("--others", nargs="*", default=OTHERS)
    parser.add_argument("--why", action="store_true", help="diagnose the plain table's misses")
    args = parser.parse_args()
    others = {Path(resolve(name)).stem: colours(resolve(name)) for name in args.others}
    print("| pair | shaper | source | " + " | ".join(others) + " | lowest |")
    print("|---|---|---:|" + "---:|" * (len(others) + 1))
    for pair in args.pairs:
        source, target = (resolve(p) for p in pair.split(":"))
        with tempfile.TemporaryDirectory() as tmp:
            look_path = Path(tmp) / "look.otmap"
            command = ["transfer", str(source), str(target), "-o", f"{tmp}/out.png"]
            command += ["--save-map", str(look_path), "--device", "cpu", "--quiet", "--force"]
            subprocess.run([sys.executable, "-m", "otcolor", *command], check=True)
            look = load_map(look_path).look
        rgb = colours(source)
        if args.why:
            print(f"<!-- {pair} -->")
            why(look, rgb)
        profile = bend_profile(look)
        shapers = {
            "none (plain .cube)": (IDENTITY, None),
            "log family, scored on the uniform cube (before)": (best_log(look, 33), None),
            "density, exponent 0.5, ratio 4": (density_shaper(look, 4, 0.5, profile), None),
            "density, exponent 1, ratio 2": (density_shaper(look, 2, 1.0, profile), None),
            "density, exponent 1, ratio 8": (density_shaper(look, 8, 1.0, profile), None),
        }
        chosen = choose_shaper(look, 33)
        kind = "density" if isinstance(chosen, DensityShaper) else "log"
        shapers[f"**chosen (default): {kind}**"] = (chosen, None)
        shapers["chosen, fitted for tetrahedral only"] = (chosen, ("tetrahedral",))
        for name, (shaper, kinds) in shapers.items():
            table = fit_lut(look, 33, shaper=shaper, kinds=kinds or ("tetrahedral", "trilinear"))
            scores = [within_2(look, table, shaper, rgb)]
            scores += [within_2(look, table, shaper, c) for c in others.values()]
            cells = " | ".join(f"{100 * s:.2f} %" for s in scores)
            print(f"| {pair} | {name} | {cells} | {100 * min(scores[1:]):.2f} % |", flush=True)


if __name__ == "__main__":
    main()
