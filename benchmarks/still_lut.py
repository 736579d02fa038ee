r"""How close a regrained look's LUT is to the still the user approved (issue 30).

For each pair: the default transfer (library :func:`otcolor.transfer.transfer`, with
``save_map``), then ``otcolor lut`` twice at 33 points, the default (the approved still's
colour function, kept in the map file) and ``--pure``; each ``.cube`` is applied to the source
by OpenColorIO and FFmpeg (tetrahedral) and scored against the still: mean CIEDE2000, and the
grain in the source's flattest blocks relative to the source's own
(:func:`otcolor.bench.lutcheck.flat_noise`; the still scores itself too).

With ``--gains G ...`` it also refits the still's table at each unit-gain weight γ
(:func:`otcolor.io.stilllut.fit_still_lut`) and reads every table with otcolor's own
tetrahedral and trilinear interpolation: the sweep behind ``STILL_GAIN``.

Usage: ``python benchmarks/still_lut.py [--pairs ocean chelsea SRC:TGT ...] [--gains 0 0.05]
[--json]``
(short names are :data:`otcolor.bench.pixels.DEFAULT_PAIRS`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from otcolor.bake import bake_look
from otcolor.bench.lutcheck import apply_ffmpeg, apply_ocio, flat_noise
from otcolor.bench.pixels import DEFAULT_PAIRS
from otcolor.io import load_image
from otcolor.io.lut import fit_lut, read_table
from otcolor.io.mapfile import load_map
from otcolor.io.stilllut import fit_still_lut
from otcolor.metrics import mean_ciede2000
from otcolor.transfer import transfer

ROOT = Path(__file__).resolve().parents[1]


def _pair(spec: str) -> tuple[str, Path, Path]:
    if spec in DEFAULT_PAIRS:
        source, target = (ROOT / p for p in DEFAULT_PAIRS[spec])
        return spec, source, target
    source, target = spec.split(":")
    return f"{Path(source).stem}:{Path(target).stem}", Path(source), Path(target)


def _bytes(path: Path) -> np.ndarray:
    rgb = load_image(path).rgb  # in the working space (sRGB), as the LUT reads it
    return rgb if rgb.dtype == np.uint8 else np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def _read(table: np.ndarray, source: np.ndarray, kind: str) -> np.ndarray:
    values = read_table(table, source.reshape(-1, 3) / 255.0, kind)
    return np.round(np.clip(values, 0, 1) * 255).astype(np.uint8).reshape(source.shape)


def gain_sweep(name: str, map_path: Path, source: np.ndarray, still: np.ndarray,
               gains: list[float]) -> list[dict]:  # fmt: skip
    look = load_map(map_path).look
    tables = {"pure (--pure)": fit_lut(look, 33)}
    for gain in gains:
        tables[f"still, gamma {gain:g}"] = fit_still_lut(
            look, source, still / 255.0, 33, gain=gain
        )
    return [
        {
            "pair": name,
            "lut": label,
            "reader": f"otcolor {kind}",
            "delta_e": mean_ciede2000(_read(table, source, kind), still),
            "noise": flat_noise(source, _read(table, source, kind)),
        }  # fmt: skip
        for label, table in tables.items()
        for kind in ("tetrahedral", "trilinear")
    ]


def run_pair(spec: str, tmp: Path, gains: list[float]) -> list[dict]:
    name, source_path, target_path = _pair(spec)
    still_path, map_path = tmp / "still.png", tmp / "look.otmap"
    transfer(source_path, target_path, still_path, save_map=map_path, force=True)
    source, still = _bytes(source_path), _bytes(still_path)
    rows = [{"pair": name, "lut": "(the still)", "reader": "-", "delta_e": 0.0,
             "noise": flat_noise(source, still)}]  # fmt: skip
    for lut, pure in (("still (default)", False), ("pure (--pure)", True)):
        path = tmp / ("pure.cube" if pure else "still.cube")
        bake_look(map_path, path, size=33, pure=pure, force=True)
        for reader, apply in (("ocio", apply_ocio), ("ffmpeg", apply_ffmpeg)):
            out = apply(path, source)
            score = mean_ciede2000(out, still)
            rows.append({"pair": name, "lut": lut, "reader": reader,
                         "delta_e": score, "noise": flat_noise(source, out)})  # fmt: skip
    if gains:
        rows += gain_sweep(name, map_path, source, still, gains)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS))
    parser.add_argument("--gains", nargs="*", type=float, default=[])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.pairs:
            new = run_pair(spec, Path(tmp), args.gains)
            rows += new
            if not args.json:
                for row in new:
                    print(f"| {row['pair']} | {row['lut']} | {row['reader']} | "
                          f"{row['delta_e']:.2f} | {row['noise']:.2f}x |", flush=True)  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
