r"""Shared pieces of the benchmarks: name expansion, result records, timing, results files."""

from __future__ import annotations

__all__ = [
    "BENCH_LOSSES",
    "BENCH_MODELS",
    "BenchReport",
    "BenchResult",
    "MIN_BENCH_PIXELS",
    "Progress",
    "check_bench_image",
    "check_out_dir",
    "remove_created",
    "expand",
    "machine_info",
    "write_json_atomic",
    "write_text_atomic",
]

import json
import os
import platform
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError, OutputError, UsageError
from ..io import write_atomically
from ..losses import LOSSES
from ..models import MODELS
from ..serial import json_safe

#: The architectures every benchmark compares (``all``), in table order.
BENCH_MODELS: tuple[str, ...] = ("cmgn", "mmgn", "icnn")

#: The losses the benchmarks compare (``all``): the seed's KL and adversarial Wasserstein, and
#: the sliced W2 otcolor trains colour maps with.
BENCH_LOSSES: tuple[str, ...] = ("kl", "wgan", "sliced")

#: ``progress(label, step, total, info)``: reported after each training step of each run.
Progress = Callable[[str, int, int, str], None]


def expand(names: str | Iterable[str], choices: Sequence[str], known: Iterable[str]) -> list[str]:
    r"""Returns the names to run: ``"all"`` stands for every one of ``choices``.

    Duplicates are dropped, order is kept.

    Raises:
        UsageError: for a name outside ``known`` (the registry) or ``choices``.
    """

    names = [names] if isinstance(names, str) else list(names)
    out: list[str] = []
    allowed = set(choices) & set(known)
    for name in names:
        picked = list(choices) if name == "all" else [name]
        for item in picked:
            if item not in allowed:
                raise UsageError(
                    f"unknown name {item!r}", f"choose one of {', '.join(choices)} or all"
                )
            if item not in out:
                out.append(item)
    return out


def expand_models(names: str | Iterable[str]) -> list[str]:
    r"""``expand`` over :data:`BENCH_MODELS`."""

    return expand(names, BENCH_MODELS, MODELS)


def expand_losses(names: str | Iterable[str], choices: Sequence[str] = BENCH_LOSSES) -> list[str]:
    r"""``expand`` over ``choices`` (default :data:`BENCH_LOSSES`)."""

    return expand(names, choices, LOSSES)


@dataclass
class BenchResult:
    r"""One model × loss run of a benchmark: its settings, time and metrics."""

    model: str
    loss: str
    seconds: float  # training only (periodic evaluations excluded)
    metrics: dict[str, float | int | None]
    settings: dict[str, Any] = field(default_factory=dict)  # steps, lr, init, ...

    def row(self) -> dict[str, Any]:
        r"""The flat JSON record ``{"model", "loss", "seconds", **metrics, "settings"}``."""

        return {
            "model": self.model,
            "loss": self.loss,
            "seconds": self.seconds,
            **self.metrics,
            "settings": self.settings,
        }


@dataclass
class BenchReport:
    r"""What one ``otcolor bench`` invocation measured."""

    benchmark: str
    config: dict[str, Any]
    results: list[BenchResult]
    baselines: list[BenchResult] = field(default_factory=list)
    reference: dict[str, Any] = field(default_factory=dict)  # problem facts, published numbers
    machine: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # written into --out
    notes: str = ""  # Markdown appended to the results file (e.g. a per-pair table)
    #: Point clouds for the figures (source, target, mapped by (model, loss)); not in the JSON.
    samples: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        r"""The ``--json`` object: ``{"benchmark", "results": [...], ...}``."""

        return {
            "benchmark": self.benchmark,
            "results": [r.row() for r in self.results],
            "baselines": [r.row() for r in self.baselines],
            "config": self.config,
            "reference": self.reference,
            "machine": self.machine,
            "files": self.files,
        }


def machine_info(device: torch.device | str) -> dict[str, Any]:
    r"""Where the numbers were measured: platform, usable CPUs, threads, versions, device."""

    device = torch.device(device)
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


#: The fewest pixels a benchmark image may have: the scores compare samples of each image (the
#: target's noise floor is the distance between two disjoint samples of it, the baselines
#: estimate covariances), which a single pixel cannot give.
MIN_BENCH_PIXELS = 2


def check_bench_image(name: object, shape: tuple[int, ...]) -> None:
    r"""Refuses an image too small to be scored, before any fit.

    Raises:
        InputError: fewer than :data:`MIN_BENCH_PIXELS` pixels (exit code 3).
    """

    height, width = shape[0], shape[1]
    if height * width < MIN_BENCH_PIXELS:
        raise InputError(
            f"{name}: a {width}x{height} image is too small for a benchmark, which compares "
            f"samples of each image (at least {MIN_BENCH_PIXELS} pixels)",
            "use 'otcolor transfer' or 'otcolor preview' for a single colour",
        )


def check_out_dir(
    out: str | os.PathLike[str] | None, names: Iterable[str], force: bool
) -> list[Path]:
    r"""Checks, before any work, that ``out`` can receive the files ``names``, creating it.

    Returns:
        The folders created here, outermost first: a run that fails removes them again
        (:func:`remove_created`), so that it leaves no empty ``--out`` behind.

    Raises:
        UsageError: a file to write exists and ``force`` is false, or ``out`` is a file.
        OutputError: ``out`` cannot be created or is not writable.
    """

    if out is None:
        return []
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder", "pass a folder")
    if not force:
        clash = [name for name in names if (out / name).exists()]
        if clash:
            raise UsageError(
                f"{out / clash[0]} exists", "pass --force to replace it or choose another --out"
            )
    missing = [folder for folder in (out, *out.parents) if not folder.exists()][::-1]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        remove_created(missing)
        raise OutputError(f"cannot create {out}: {err.strerror}", "check the path") from err
    if not os.access(out, os.W_OK):
        raise OutputError(f"{out} is not writable", "choose another --out")
    return missing


def remove_created(folders: Sequence[Path]) -> None:
    r"""Removes folders a failed run created (innermost first), each only if still empty."""

    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (someone else's files) or gone: leave it and those above


def write_text_atomic(path: Path, text: str, overwrite: bool = True) -> None:
    r"""Writes UTF-8 ``text`` to ``path`` as :func:`otcolor.io.write_atomically` does
    (synced temporary file, then a rename: never half-written; without ``overwrite`` a file
    that appeared at ``path`` meanwhile is kept).

    Raises:
        OutputError: the file cannot be written; UsageError: ``path`` appeared meanwhile.
    """

    write_atomically(path, lambda fp: fp.write(text.encode("utf-8")), overwrite)


def write_json_atomic(path: Path, payload: dict[str, Any], overwrite: bool = True) -> None:
    r"""Writes ``payload`` as indented JSON, atomically (NaN/inf become ``null``)."""

    write_text_atomic(path, json.dumps(json_safe(payload), indent=2) + "\n", overwrite)


def results_dict(results: Sequence[BenchResult]) -> list[dict[str, Any]]:
    r"""The rows of ``results`` (see :meth:`BenchResult.row`)."""

    return [r.row() for r in results]


def asdict_config(config: object) -> dict[str, Any]:
    r"""A dataclass config as a plain dict (for the results file)."""

    return asdict(config)  # type: ignore[call-overload]


#: Table columns per benchmark: (metric key, header, format). Shared by the Rich table of the
#: CLI and the Markdown results file.
COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "gaussian": [
        ("l2_uvp", "l2_uvp %", ".3f"),
        ("cos", "cos", ".4f"),
        ("w2", "w2", ".4f"),
        ("steps_to_1pct", "steps to 1%", "d"),
        ("seconds", "seconds", ".1f"),
    ],
    "gmm": [
        ("w2_ratio", "w2_ratio", ".3f"),
        ("cost_ratio", "cost_ratio", ".3f"),
        ("seconds", "seconds", ".1f"),
    ],
    "known": [
        ("median_psnr", "median PSNR dB", ".1f"),
        ("min_psnr", "min PSNR dB", ".1f"),
        ("median_rmse", "median RMSE", ".2f"),
        ("max_p99", "worst p99", ".1f"),
        ("seconds", "seconds", ".1f"),
    ],
    "pixels": [
        ("w2_ratio", "w2_ratio", ".2f"),
        ("cost_ratio", "cost_ratio", ".3f"),
        ("violations", "violations", ".2g"),
        ("amp999", "amp999", ".2f"),
        ("structure", "structure", ".4f"),
        ("seconds", "seconds", ".1f"),
    ],
}


def format_value(value: Any, spec: str) -> str:
    r"""``value`` formatted with ``spec``; ``—`` for a missing one (e.g. never reached 1 %)."""

    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    return format(value, spec)


def table_rows(report: BenchReport) -> tuple[list[str], list[list[str]]]:
    r"""The header and the formatted rows (results, then baselines) of ``report``'s table."""

    columns = COLUMNS[report.benchmark]
    header = ["model", "loss", *(title for _, title, _ in columns)]
    rows = []
    for result in [*report.results, *report.baselines]:
        record = result.row()
        rows.append(
            [result.model, result.loss]
            + [format_value(record.get(key), spec) for key, _, spec in columns]
        )
    return header, rows


def markdown_table(report: BenchReport) -> str:
    r"""``report``'s table in Markdown, with the machine it ran on."""

    header, rows = table_rows(report)
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    m = report.machine
    lines += [
        "",
        (
            f"Machine: {m.get('processor')}, {m.get('cpus_usable')} usable CPUs, "
            f"OMP_NUM_THREADS={m.get('omp_num_threads')}, torch {m.get('torch')}, "
            f"device {m.get('device')}."
        ),
    ]
    if report.notes:
        lines += ["", report.notes.rstrip("\n")]
    return "\n".join(lines) + "\n"


def warm_up() -> None:
    r"""Pays once for what the first Adam optimiser of a process imports (``torch._dynamo``,
    about a second), so that the first run's ``seconds`` is comparable with the others'."""

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
