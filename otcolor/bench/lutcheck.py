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

__all__ = ["INTERPOLATIONS", "agreement", "apply_ffmpeg", "apply_ocio"]

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
