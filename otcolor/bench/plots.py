r"""Figures of the benchmarks: source / target / mapped scatter plots, one panel per model.

matplotlib is an optional dependency (extra ``bench``), imported only when a figure is drawn.
"""

from __future__ import annotations

__all__ = ["require_matplotlib", "scatter_panels"]

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..io import write_atomically

#: Points drawn per cloud: enough to see the shape, few enough to keep PNGs small.
MAX_POINTS = 2000


def require_matplotlib() -> Any:
    r"""Returns ``matplotlib.pyplot`` on the non-interactive Agg backend.

    Raises:
        UsageError: if matplotlib is not installed (figures were asked for with ``--out``).
    """

    try:
        import matplotlib
    except ImportError as err:
        raise UsageError(
            "figures need matplotlib, which is not installed",
            "pip install 'otcolor[bench]', or leave out --out",
        ) from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _thin(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    points = np.asarray(points)
    if len(points) <= MAX_POINTS:
        return points
    return points[rng.choice(len(points), MAX_POINTS, replace=False)]


def scatter_panels(
    path: Path,
    source: np.ndarray,
    target: np.ndarray,
    mapped: Mapping[str, np.ndarray],
    title: str,
    axes: Sequence[tuple[int, int]] = ((0, 1),),
    axis_names: Sequence[str] | None = None,
    colors: bool = False,
    overwrite: bool = True,
) -> Path:
    r"""Draws one panel per entry of ``mapped`` (and one row per pair of ``axes``) and saves a PNG.

    Each panel shows the source (grey), target (blue) and mapped (orange) points projected on
    two coordinates, like the seed slides' figures. With ``colors`` (pixel clouds in [0, 1]) the
    target and mapped points are drawn in their own RGB colour instead.

    Arguments:
        path: the PNG to write.
        source: source points, :math:`(N, D)`.
        target: target points, :math:`(M, D)`.
        mapped: panel title -> mapped points :math:`(N', D)`.
        title: the figure title.
        axes: the coordinate pairs, one row of panels each.
        axis_names: names of the coordinates (default ``x1, x2, ...``).
    """

    plt = require_matplotlib()
    rng = np.random.default_rng(0)
    source, target = _thin(source, rng), _thin(target, rng)
    names = list(axis_names or [f"x{i + 1}" for i in range(np.shape(source)[1])])
    rows, cols = len(axes), max(len(mapped), 1)
    fig, grid = plt.subplots(
        rows, cols, figsize=(3.4 * cols, 3.2 * rows), squeeze=False, sharex="row", sharey="row"
    )
    for row, (i, j) in enumerate(axes):
        for col, (label, points) in enumerate(mapped.items()):
            ax = grid[row][col]
            points = _thin(points, rng)
            style = {"s": 3, "alpha": 0.35, "linewidths": 0}
            ax.scatter(source[:, i], source[:, j], color="0.65", label="source", **style)
            if colors:
                ax.scatter(target[:, i], target[:, j], c=np.clip(target, 0, 1), marker="s",
                           label="target", **style)  # fmt: skip
                ax.scatter(points[:, i], points[:, j], color="C1", label="mapped", **style)
            else:
                ax.scatter(target[:, i], target[:, j], color="C0", label="target", **style)
                ax.scatter(points[:, i], points[:, j], color="C1", label="mapped", **style)
            if row == 0:
                ax.set_title(label, fontsize=10)
            ax.set_xlabel(names[i])
            if col == 0:
                ax.set_ylabel(names[j])
            ax.set_aspect("equal", adjustable="box")
    handles, labels = grid[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, markerscale=4, frameon=False)
    fig.suptitle(title)
    # Room for the legend below the x labels: a fixed height, whatever the number of rows.
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight(), 1, 1))
    # Through the atomic writer: a figure is never half-written, and without ``overwrite`` a
    # file that appeared at ``path`` during the run is kept.
    try:
        write_atomically(Path(path), lambda fp: fig.savefig(fp, dpi=110, format="png"), overwrite)
    finally:
        plt.close(fig)
    return path
