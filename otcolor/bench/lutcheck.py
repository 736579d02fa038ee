r"""Reads a LUT file back through the tools users grade with, to check it against otcolor.

:func:`apply_ffmpeg` runs FFmpeg's ``lut3d`` filter on 8-bit RGB through pipes (no temporary
files, no YUV round trip); :func:`apply_ocio` runs OpenColorIO's ``FileTransform`` on float
RGB and rounds to 8 bits; :func:`agreement` scores one result against another. Neither reader
is a dependency of otcolor: FFmpeg is a program on ``PATH``, OpenColorIO the optional
``PyOpenColorIO`` module (``pip install opencolorio``, in the ``test`` extra).

Readers differ in small ways that the figures include: FFmpeg 5.1 truncates 8-bit outputs
(an identity table raised by 0.6/255 leaves 8-bit pixels unchanged), where otcolor and this
module's OCIO path round.
"""

from __future__ import annotations

__all__ = ["INTERPOLATIONS", "agreement", "apply_ffmpeg", "apply_ocio", "flat_noise"]

import os
import shutil
import subprocess

import numpy as np

#: The interpolations both readers offer.
INTERPOLATIONS = ("tetrahedral", "trilinear")


def apply_ffmpeg(
    lut: str | os.PathLike[str], rgb: np.ndarray, interp: str = "tetrahedral"
) -> np.ndarray:
    r"""Applies a ``.cube`` or ``.csp`` file with ``ffmpeg -vf lut3d``.

    Arguments:
        lut: the LUT file (FFmpeg picks the parser from the extension).
        rgb: the image, :math:`(H, W, 3)` uint8.
        interp: ``"tetrahedral"`` (FFmpeg's default) or ``"trilinear"``.

    Returns:
        FFmpeg's output, :math:`(H, W, 3)` uint8.

    Raises:
        FileNotFoundError: ``ffmpeg`` is not on ``PATH``.
        subprocess.CalledProcessError: FFmpeg refused the file (its message is in ``stderr``).
    """

    if interp not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interp!r}")
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise FileNotFoundError("ffmpeg is not on PATH")
    height, width, _ = rgb.shape
    # Colons and backslashes would end or escape the filter argument.
    path = str(lut).replace("\\", "\\\\").replace(":", "\\:").replace("'", "\\'")
    done = subprocess.run(
        [
            ffmpeg,
            "-v",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{width}x{height}",
            "-i",
            "-",
            "-vf",
            f"lut3d=file='{path}':interp={interp}",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        input=np.ascontiguousarray(rgb, np.uint8).tobytes(),
        capture_output=True,
        check=True,
    )
    return np.frombuffer(done.stdout, np.uint8).reshape(height, width, 3)


def apply_ocio(
    lut: str | os.PathLike[str], rgb: np.ndarray, interp: str = "tetrahedral"
) -> np.ndarray:
    r"""Applies a ``.cube`` or ``.csp`` file with an OpenColorIO ``FileTransform``.

    Arguments:
        lut: the LUT file.
        rgb: the image, :math:`(H, W, 3)` uint8.
        interp: ``"tetrahedral"`` or ``"trilinear"`` (``INTERP_TETRAHEDRAL``/``INTERP_LINEAR``).

    Returns:
        OCIO's float output rounded to 8 bits, :math:`(H, W, 3)` uint8.
    """

    import PyOpenColorIO as ocio

    mode = {"tetrahedral": ocio.INTERP_TETRAHEDRAL, "trilinear": ocio.INTERP_LINEAR}[interp]
    # OCIO caches LUT files by path for the life of the process: a file rewritten in place
    # (a re-export, a benchmark loop) would otherwise be read as its first version.
    ocio.ClearAllCaches()
    transform = ocio.FileTransform(src=os.fspath(lut), interpolation=mode)
    processor = ocio.Config.CreateRaw().getProcessor(transform).getDefaultCPUProcessor()
    pixels = np.ascontiguousarray(rgb, np.float32) / 255.0
    processor.applyRGB(pixels)  # in place
    return np.clip(np.round(pixels * 255.0), 0, 255).astype(np.uint8)


def agreement(result: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    r"""How closely ``result`` matches ``reference`` (both uint8, same shape), per pixel by
    the largest channel difference :math:`d` in 8-bit levels.

    Returns:
        ``within_1`` and ``within_2`` (fractions of pixels with :math:`d \le 1`, :math:`\le 2`),
        ``p99`` (the 99th percentile of :math:`d`) and ``max``.
    """

    diff = np.abs(result.astype(np.int16) - reference.astype(np.int16)).max(-1).ravel()
    return {
        "within_1": float(np.mean(diff <= 1)),
        "within_2": float(np.mean(diff <= 2)),
        "p99": float(np.percentile(diff, 99)),
        "max": float(diff.max()),
    }


def flat_noise(
    source: np.ndarray, output: np.ndarray, block: int = 16, share: float = 0.05
) -> float:
    r"""Grain in the source's flattest areas, output over source: the standard deviation of the
    luma's high-pass (the luma minus its 3×3 mean) over the ``share`` of ``block``-sized blocks
    whose smoothed luma varies least in the source. 1 keeps the grain; a LUT that stretches the
    colours of a flat sky scores several times that.

    Arguments:
        source, output: :math:`(H, W, 3)` images on one scale (uint8, or floats in [0, 1]).
    """

    from scipy.ndimage import uniform_filter

    weights = np.array([0.2126, 0.7152, 0.0722])
    luma_in = np.asarray(source, np.float64) @ weights
    luma_out = np.asarray(output, np.float64) @ weights
    rows, cols = luma_in.shape[0] // block, luma_in.shape[1] // block
    if rows * cols == 0:
        raise ValueError(f"images smaller than one {block}x{block} block")
    slope = np.pad(np.abs(np.diff(uniform_filter(luma_in, 5), axis=1)), ((0, 0), (0, 1)))
    blocks = slope[: rows * block, : cols * block].reshape(rows, block, cols, block).mean((1, 3))
    flattest = np.zeros(rows * cols, bool)
    flattest[np.argsort(blocks.ravel())[: max(1, int(share * rows * cols))]] = True
    mask = np.kron(flattest.reshape(rows, cols), np.ones((block, block), bool)).astype(bool)

    def high_pass(luma: np.ndarray) -> np.ndarray:
        return (luma - uniform_filter(luma, 3))[: rows * block, : cols * block][mask]

    return float(high_pass(luma_out).std() / max(high_pass(luma_in).std(), 1e-12))
