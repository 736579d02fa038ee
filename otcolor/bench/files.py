r"""Where a benchmark's results go: the results JSON, a Markdown table and scatter figures."""

from __future__ import annotations

__all__ = ["planned_files", "report_prefix", "save_report"]

from pathlib import Path

from .common import BenchReport, markdown_table, write_json_atomic, write_text_atomic
from .plots import scatter_panels

#: Display names of the models in figure panels.
PANEL_NAMES = {"cmgn": "C-MGN", "mmgn": "M-MGN", "icnn": "ICNN"}


def report_prefix(benchmark: str, dim: int | None = None) -> str:
    r"""The file-name prefix of a benchmark's outputs (``gaussian_d16``, ``gmm``, ``pixels``),
    distinct per benchmark and dimension so that every run can share one ``--out`` folder."""

    return f"gaussian_d{dim}" if benchmark == "gaussian" else benchmark


def planned_files(prefix: str, losses: list[str], baselines: bool) -> list[str]:
    r"""The names :func:`save_report` writes, known before the run (for the ``--force`` check)."""

    names = [f"{prefix}.json", f"{prefix}.md", *(f"{prefix}_{loss}.png" for loss in losses)]
    if baselines:
        names.append(f"{prefix}_baselines.png")
    return names


def save_report(report: BenchReport, out: Path, prefix: str, overwrite: bool = True) -> list[str]:
    r"""Writes ``report`` into the folder ``out``; returns the file names, also kept in
    ``report.files``.

    ``PREFIX.json`` (:meth:`BenchReport.to_json`), ``PREFIX.md`` (the table) and one scatter
    figure per loss, ``PREFIX_LOSS.png``, with one panel per model (plus
    ``PREFIX_baselines.png`` when the report has baselines with samples). Every file is
    committed atomically; without ``overwrite`` one that appeared during the run is kept
    (UsageError).
    """

    out.mkdir(parents=True, exist_ok=True)
    samples = report.samples
    pixels = report.benchmark == "pixels"
    axes = ((0, 1), (0, 2)) if pixels else ((0, 1),)
    names = ("R", "G", "B") if pixels else None
    files: list[str] = []
    losses = report.config.get("losses", [])
    for loss in losses:
        panels = {
            PANEL_NAMES.get(model, model): points
            for (model, loss_name), points in samples.get("mapped", {}).items()
            if loss_name == loss
        }
        if "exact" in samples:
            panels["exact (Bures map)"] = samples["exact"]
        if not panels:
            continue
        name = f"{prefix}_{loss}.png"
        title = f"{report.benchmark}: loss {loss}" + (
            f", D={report.config['dim']} (first two coordinates)"
            if report.benchmark == "gaussian" and report.config["dim"] > 2
            else ""
        )
        scatter_panels(out / name, samples["source"], samples["target"], panels, title, axes,
                       names, colors=pixels, overwrite=overwrite)  # fmt: skip
        files.append(name)
    baseline_panels = {
        model: points for (model, loss), points in samples.get("mapped", {}).items() if loss == "-"
    }
    if baseline_panels:
        name = f"{prefix}_baselines.png"
        scatter_panels(out / name, samples["source"], samples["target"], baseline_panels,
                       f"{report.benchmark}: baselines", axes, names, colors=pixels,
                       overwrite=overwrite)  # fmt: skip
        files.append(name)
    files = [f"{prefix}.json", f"{prefix}.md", *files]
    report.files = files
    write_text_atomic(out / f"{prefix}.md", markdown_table(report), overwrite)
    write_json_atomic(out / f"{prefix}.json", report.to_json(), overwrite)
    return files
