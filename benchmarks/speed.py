r"""Speed benchmark: whole ``otcolor`` commands against the tools users pick and the I/O floor.

Every figure is a whole command in its own process (interpreter start, imports, decoding,
work, encoding), timed by the operating system: wall time, CPU time (user + system, from
``wait4``) and peak resident memory. Commands that are compared run in turn, A B A B, so that a
shared machine's load falls on both; each ratio is the median of its repeats.

* ``transfer``: ``otcolor transfer`` (default: the regrain) against color-matcher's
  ``hm-mkl-hm`` (``pip install color-matcher``) on the same pair;
* ``apply``: ``otcolor apply`` of a saved look to a 24-megapixel JPEG, with and without the
  regrain, against decoding and re-encoding the same JPEG with Pillow at the same quality;
* ``transfer 24 MP``: the default transfer of that JPEG, its peak memory;
* ``startup``: ``otcolor --help`` against ``python -c "import torch"``.

Run from the checkout (about 5 minutes on 2 cores)::

    python benchmarks/speed.py [--pairs ocean chelsea] [--repeats 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from otcolor.bench.pixels import DEFAULT_PAIRS

PYTHON = sys.executable


#: Exit codes that mean success, per program. color-matcher 0.6's exit code means nothing (1
#: after writing its output, 0 on a missing input), so its runs are judged by a fresh output
#: file instead (``alternate``'s ``outputs``).
OK_CODES = {"color-matcher": (0, 1)}


def measure(command: list[str], cwd: Path) -> dict[str, float]:
    r"""Runs ``command``; its wall and CPU seconds and peak memory (MB)."""

    began = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    error = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.returncode not in OK_CODES.get(Path(command[0]).name, (0,)):
        raise RuntimeError(f"{command} failed ({process.returncode}): {error[-400:]}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_mb": usage.ru_maxrss / 1024,
    }


def alternate(
    commands: dict[str, list[str]],
    cwd: Path,
    repeats: int,
    outputs: dict[str, Path] | None = None,
) -> dict[str, dict]:
    r"""Runs the commands in turn, A B A B, ``repeats`` times; the medians of each. A command
    named in ``outputs`` must write that file anew on every run."""

    runs: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            expected = (outputs or {}).get(name)
            if expected is not None:
                expected.unlink(missing_ok=True)
            runs[name].append(measure(command, cwd))
            if expected is not None and not expected.is_file():
                raise RuntimeError(f"{command} wrote no {expected.name}")
    return {
        name: {key: statistics.median(r[key] for r in values) for key in values[0]}
        for name, values in runs.items()
    }


def big_jpeg(path: Path, source: Path, size: tuple[int, int] = (6000, 4000)) -> Path:
    r"""A 24-megapixel JPEG made from a photo (bicubic upscaling, quality 90)."""

    from PIL import Image

    Image.open(source).convert("RGB").resize(size, Image.Resampling.BICUBIC).save(path, quality=90)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", nargs="*", default=["ocean", "chelsea"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/output/speed")
    args = parser.parse_args()
    matcher = shutil.which("color-matcher") or str(Path(PYTHON).with_name("color-matcher"))
    rows: list[dict] = []
    otcolor = [PYTHON, "-m", "otcolor"]
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for pair in args.pairs:
            source, target = (ROOT / p for p in DEFAULT_PAIRS[pair])
            local = tmp / f"{pair}{source.suffix}"  # color-matcher writes beside its source
            shutil.copy(source, local)
            result = alternate(
                {
                    "otcolor": [*otcolor, "transfer", str(local), str(target), "-o",
                                str(tmp / "out.jpg"), "--force", "--quiet"],
                    "color-matcher": [matcher, "-s", str(local), "-r", str(target), "-m",
                                      "hm-mkl-hm"],
                },
                tmp,
                args.repeats,
                outputs={"color-matcher": tmp / f"{pair}_hm-mkl-hm{source.suffix}"},
            )  # fmt: skip
            rows.append({"what": f"transfer {pair}", **_ratio(result, "otcolor", "color-matcher")})

        day, sunset = (ROOT / p for p in DEFAULT_PAIRS["ocean"])
        photo = big_jpeg(tmp / "big.jpg", day)
        look = tmp / "look.otmap"
        measure([*otcolor, "transfer", str(day), str(sunset), "-o", str(tmp / "o.png"),
                 "--save-map", str(look), "--quiet"], tmp)  # fmt: skip
        reencode = (
            "import sys; from PIL import Image; "
            "Image.open(sys.argv[1]).save(sys.argv[2], quality=95, subsampling=0)"
        )
        result = alternate(
            {
                "apply": [*otcolor, "apply", str(look), str(photo), "-o", str(tmp / "a.jpg"),
                          "--force", "--quiet"],
                "apply --no-regrain": [*otcolor, "apply", str(look), str(photo), "-o",
                                       str(tmp / "b.jpg"), "--no-regrain", "--force", "--quiet"],
                "decode+encode": [PYTHON, "-c", reencode, str(photo), str(tmp / "c.jpg")],
            },
            tmp,
            args.repeats,
        )  # fmt: skip
        rows.append({"what": "apply 24 MP JPEG", **_ratio(result, "apply", "decode+encode")})
        rows.append(
            {"what": "apply 24 MP, no regrain", **_ratio(result, "apply --no-regrain",
                                                        "decode+encode")}
        )  # fmt: skip
        big = measure([*otcolor, "transfer", str(photo), str(sunset), "-o", str(tmp / "t.jpg"),
                       "--quiet"], tmp)  # fmt: skip
        rows.append({"what": "transfer 24 MP JPEG", "a": big, "b": None, "cpu_ratio": None,
                     "wall_ratio": None})  # fmt: skip
        result = alternate(
            {
                "otcolor --help": [*otcolor, "--help"],
                "import torch": [PYTHON, "-c", "import torch"],
            },
            tmp,
            max(args.repeats, 3),
        )
        rows.append({"what": "startup", **_ratio(result, "otcolor --help", "import torch")})

    machine = (
        f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, Python "
        f"{platform.python_version()}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps({"machine": machine, "rows": rows}, indent=1)
    )
    text = _table(rows) + f"\nMachine: {machine}.\n"
    (args.out / "results.md").write_text(text)
    print(text)


def _ratio(result: dict[str, dict], a: str, b: str) -> dict:
    return {
        "a_name": a,
        "b_name": b,
        "a": result[a],
        "b": result[b],
        "cpu_ratio": result[a]["cpu"] / max(result[b]["cpu"], 1e-9),
        "wall_ratio": result[a]["wall"] / max(result[b]["wall"], 1e-9),
    }


def _table(rows: list[dict]) -> str:
    lines = [
        "| what | otcolor: wall / CPU s, MB | reference: wall / CPU s, MB | CPU ratio | wall ratio |",
        "|---|---|---|---:|---:|",
    ]  # fmt: skip

    def cell(run: dict | None, name: str = "") -> str:
        if run is None:
            return "—"
        label = f"{name}: " if name else ""
        return f"{label}{run['wall']:.2f} / {run['cpu']:.2f}, {run['peak_mb']:.0f}"

    for r in rows:
        ratio = "—" if r["cpu_ratio"] is None else f"{r['cpu_ratio']:.2f}"
        wall = "—" if r["wall_ratio"] is None else f"{r['wall_ratio']:.2f}"
        lines.append(
            f"| {r['what']} | {cell(r['a'])} | {cell(r['b'], r.get('b_name', ''))} | {ratio} | "
            f"{wall} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
