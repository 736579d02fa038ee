r"""Video: one look for a whole clip, applied to every frame through ffmpeg pipes.

The map is fitted once, on pixels pooled from frames spread across the clip (or loaded from a
map file), and every frame goes through the same :class:`otcolor.color.ColorTable`: a colour
gets the same output in every frame, so the result cannot flicker. ffmpeg decodes the frames to
raw 8-bit RGB (its default YUV to RGB conversion), otcolor maps them, and ffmpeg encodes them
(H.264, CRF 18, yuv420p when libx264 is available, yuv444p for odd frame sizes); the audio
streams are then copied from the input unchanged.
"""

from __future__ import annotations

__all__ = ["VideoInfo", "VideoResult", "find_ffmpeg", "probe_video", "transfer_video"]

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .color import ColorTable
from .device import resolve_device
from .errors import InputError, OutputError, UsageError
from .fitting import Callback, FitSettings
from .io import (
    DEFAULT_MAX_PIXELS,
    check_distinct_outputs,
    check_output_path,
    commit_file,
    load_image,
    tmp_prefix,
)
from .io.mapfile import save_map as write_map
from .look import Look, LookSettings, RegrainConfig
from .pipeline import SAMPLING_SEED, fit_look, provenance, render, sample_colours, sampling_rng
from .regrain import base_colors

_HINT_FFMPEG = "install ffmpeg (e.g. 'apt install ffmpeg' or 'brew install ffmpeg') and retry"


@dataclass
class VideoInfo:
    r"""What ffprobe says about a clip's first video stream."""

    width: int
    height: int
    fps: str  # a rational, e.g. "30000/1001"
    frames: int | None  # None when the container does not say
    audio: bool


@dataclass
class VideoResult:
    r"""What ``otcolor video`` did: the ``--json`` output."""

    output: Path
    frames: int
    width: int
    height: int
    fps: str
    audio: bool  # whether audio was copied
    fitted: bool  # False when the map came from a file
    seconds: float
    fit_seconds: float
    colours: int  # distinct colours mapped (each evaluated once for the whole clip)
    warnings: list[str] = field(default_factory=list)
    saved_map: Path | None = None


def find_ffmpeg() -> tuple[str, str]:
    r"""The paths of ``ffmpeg`` and ``ffprobe``.

    Raises:
        UsageError: either is missing (exit code 2).
    """

    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if ffmpeg is None or ffprobe is None:
        missing = "ffmpeg" if ffmpeg is None else "ffprobe"
        raise UsageError(f"{missing} was not found on PATH; video needs it", _HINT_FFMPEG)
    return ffmpeg, ffprobe


def probe_video(path: str | os.PathLike[str], ffprobe: str) -> VideoInfo:
    r"""Reads the size, frame rate, frame count and audio presence of a clip.

    Raises:
        InputError: the file is missing or has no video stream ffprobe can read.
    """

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    command = [
        ffprobe,
        "-v",
        "error",
        "-show_entries",
        "stream=codec_type,width,height,r_frame_rate,nb_frames",
        "-of",
        "json",
        str(path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise InputError(f"{path}: cannot read video: {_last_line(done.stderr)}")
    try:
        streams = json.loads(done.stdout).get("streams", [])
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: cannot read video (ffprobe output unreadable)") from err
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None or not video.get("width"):
        raise InputError(f"{path}: no video stream")
    frames = str(video.get("nb_frames", ""))
    fps = str(video.get("r_frame_rate", "25/1"))
    with contextlib.suppress(ValueError, ZeroDivisionError):
        if Fraction(fps) <= 0:
            fps = "25/1"
    return VideoInfo(
        width=int(video["width"]),
        height=int(video["height"]),
        fps=fps,
        frames=int(frames) if frames.isdigit() and int(frames) > 0 else None,
        audio=any(s.get("codec_type") == "audio" for s in streams),
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "ffmpeg failed"


@contextlib.contextmanager
def _decoder(
    ffmpeg: str, path: Path, info: VideoInfo, extra: list[str] | None = None
) -> Iterator[Iterator[np.ndarray]]:
    r"""Yields an iterator over the frames of a clip, each :math:`(H, W, 3)` uint8."""

    command = [
        ffmpeg,
        "-v",
        "error",
        "-nostdin",
        "-i",
        str(path),
        *(extra or []),
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ]
    errors = tempfile.TemporaryFile()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
    size = info.width * info.height * 3

    def frames() -> Iterator[np.ndarray]:
        assert process.stdout is not None
        while True:
            data = process.stdout.read(size)
            if len(data) < size:
                break
            yield np.frombuffer(data, np.uint8).reshape(info.height, info.width, 3)

    try:
        yield frames()
        process.wait()
        if process.returncode != 0:
            errors.seek(0)
            message = _last_line(errors.read().decode(errors="replace"))
            raise InputError(f"{path}: cannot decode video: {message}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        errors.close()


def _sample_frames(
    ffmpeg: str,
    path: Path,
    info: VideoInfo,
    count: int,
    per_frame: int,
    seed: int,
    regrain_config: RegrainConfig | None = None,
) -> np.ndarray:
    r"""Pixels drawn from ``count`` frames spread evenly over the clip, :math:`(N, 3)` float32;
    for a regrained look, from the frames' base layers (:func:`otcolor.regrain.base_colors`),
    as the regrain fits."""

    step = max(1, (info.frames or count) // count)
    select = [
        "-vf",
        f"select=not(mod(n\\,{step}))",
        "-fps_mode",
        "passthrough",
        "-frames:v",
        str(count),
    ]
    rng = np.random.default_rng(seed)
    pools = []
    with _decoder(ffmpeg, path, info, select) as frames:
        for frame in frames:
            if regrain_config is not None:
                flat = base_colors(frame, regrain_config).reshape(-1, 3)
            else:
                flat = frame.reshape(-1, 3).astype(np.float32) / 255
            picks = rng.choice(flat.shape[0], size=min(per_frame, flat.shape[0]), replace=False)
            pools.append(flat[picks])
    if not pools:
        raise InputError(f"{path}: no frame could be decoded")
    return np.concatenate(pools)


#: The look a clip gets when it is fitted and no look settings are given: the pure colour map,
#: one colour table for every frame.
VIDEO_LOOK = LookSettings(regrain=None)


def transfer_video(
    source: str | os.PathLike[str],
    reference: str | os.PathLike[str] | None,
    output: str | os.PathLike[str],
    *,
    look: Look | None = None,
    fit: FitSettings | None = None,
    look_settings: LookSettings | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    fit_frames: int = 16,
    force: bool = False,
    save_map: str | os.PathLike[str] | None = None,
    fit_callback: Callback | None = None,
    frame_callback: Callable[[int, int | None], None] | None = None,
) -> VideoResult:
    r"""Recolours a clip with one look: fitted from ``reference`` or given as ``look``.

    Arguments:
        source: the input clip.
        reference: the image whose colours are wanted (``None`` when ``look`` is given).
        output: the output clip; its extension picks the container.
        look: a look to apply instead of fitting one (a map file's, with any overrides).
        fit: how the map is fitted from ``reference``.
        look_settings: the fitted look's settings (default :data:`VIDEO_LOOK`, the pure map).
        max_pixels: the largest accepted reference image.
        fit_frames: how many frames, spread over the clip, the fit samples pixels from.
        force: replace an existing output (never an input).
        save_map: also write the fitted look as a map file.
        fit_callback: called as ``callback(step, logs)`` during the fit.
        frame_callback: called as ``callback(done, total)`` after each frame (total may be
            ``None`` when the container does not give a frame count).

    Raises:
        UsageError: ffmpeg is missing (exit code 2), or bad paths.
        InputError: the clip or reference cannot be read (exit code 3).
        OutputError: the output cannot be written (exit code 4).
    """

    if (look is None) == (reference is None):
        raise UsageError("give either a reference image or a map file")
    fit = fit or FitSettings()
    look_settings = look_settings or VIDEO_LOOK
    start = time.perf_counter()
    source, output = Path(source), Path(output)
    ffmpeg, ffprobe = find_ffmpeg()
    inputs = [source, *([reference] if reference is not None else [])]
    check_distinct_outputs([output, save_map], inputs)
    check_output_path(output, inputs, force=force, image=False)
    if save_map is not None:
        check_output_path(save_map, [*inputs, output], force=force, image=False)
    info = probe_video(source, ffprobe)
    warnings: list[str] = []

    fit_seconds = 0.0
    if look is None:
        assert reference is not None
        device = resolve_device(fit.device)
        target = load_image(reference, max_pixels=max_pixels)
        warnings += target.warnings
        grain = look_settings.regrain
        per_frame = -(-fit.samples // fit_frames)
        x = _sample_frames(ffmpeg, source, info, fit_frames, per_frame, SAMPLING_SEED, grain)
        rng = sampling_rng()
        if x.shape[0] > fit.samples:
            x = x[rng.choice(x.shape[0], fit.samples, replace=False)]
        y = sample_colours(target, fit.samples, rng, grain, device)
        made = fit_look(x, y, fit, look_settings, fit_callback, device)
        warnings += made.warnings
        fit_seconds = made.fitted.seconds
        look = made.look
        if save_map is not None:
            made_from = {
                "source": (source, (info.width, info.height), None),
                "target": (reference, target.size, target.sha256),
            }
            record = provenance(made.settings, made_from, fit_frames=fit_frames)
            write_map(save_map, look, record, overwrite=force)

    table = ColorTable(look)
    if info.width % 2 or info.height % 2:
        warnings.append(
            f"{source}: {info.width}x{info.height} frames are odd-sized, so they are encoded "
            "4:4:4 (4:2:0 needs even sizes); some players cannot play that"
        )
    done, audio = _encode(ffmpeg, source, output, info, table, frame_callback, overwrite=force)
    if info.audio and not audio:
        warnings.append(f"{output}: the audio could not be copied into this container")
    return VideoResult(
        output=output,
        frames=done,
        width=info.width,
        height=info.height,
        fps=info.fps,
        audio=audio,
        fitted=reference is not None,
        seconds=time.perf_counter() - start,
        fit_seconds=fit_seconds,
        colours=table.count,
        warnings=warnings,
        saved_map=None if save_map is None else Path(save_map),
    )


def _has_encoder(ffmpeg: str, name: str) -> bool:
    done = subprocess.run(
        [ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, check=False
    )
    return any(line.split()[1:2] == [name] for line in done.stdout.splitlines())


def _encode(
    ffmpeg: str,
    source: Path,
    output: Path,
    info: VideoInfo,
    table: ColorTable,
    callback: Callable[[int, int | None], None] | None,
    overwrite: bool = True,
) -> tuple[int, bool]:
    r"""Maps every frame and writes ``output`` atomically; returns the frames and whether
    audio was copied. Without ``overwrite``, a file that appeared at ``output`` meanwhile is
    kept (:func:`otcolor.io.commit_file`)."""

    # 4:2:0 is what every player reads, but it halves both sizes: odd frames need 4:4:4.
    chroma = "yuv444p" if info.width % 2 or info.height % 2 else "yuv420p"
    codec = (
        ["-c:v", "libx264", "-crf", "18", "-pix_fmt", chroma]
        if _has_encoder(ffmpeg, "libx264")
        else []
    )
    suffix = output.suffix
    video_tmp = _temp_path(output, suffix)
    final_tmp = _temp_path(output, suffix)
    command = [
        ffmpeg,
        "-v",
        "error",
        "-nostdin",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{info.width}x{info.height}",
        "-framerate",
        info.fps,
        "-i",
        "-",
        *codec,
        str(video_tmp),
    ]
    errors = tempfile.TemporaryFile()
    done = 0
    try:
        encoder = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors
        )
        assert encoder.stdin is not None
        try:
            with _decoder(ffmpeg, source, info) as frames:
                for frame in frames:
                    # A regrained look is spatial, per frame: see docs/regrain.md, "Video".
                    mapped = render(table.look, frame, table=table, as_uint8=True)
                    if mapped.dtype != np.uint8:
                        mapped = np.round(mapped * 255).astype(np.uint8)
                    try:
                        encoder.stdin.write(mapped.tobytes())
                    except BrokenPipeError:
                        break
                    done += 1
                    if callback is not None:
                        callback(done, info.frames)
            with contextlib.suppress(BrokenPipeError):
                encoder.stdin.close()
            encoder.wait()
        finally:
            if encoder.poll() is None:
                encoder.kill()
                encoder.wait()
        if done == 0:
            raise InputError(f"{source}: no frame could be decoded")
        if encoder.returncode != 0:
            errors.seek(0)
            message = _last_line(errors.read().decode(errors="replace"))
            raise OutputError(f"{output}: ffmpeg could not encode: {message}")

        audio = False
        if info.audio:
            mux = [
                ffmpeg,
                "-v",
                "error",
                "-nostdin",
                "-y",
                "-i",
                str(video_tmp),
                "-i",
                str(source),
                "-map",
                "0:v:0",
                "-map",
                "1:a?",
                "-c",
                "copy",
                str(final_tmp),
            ]
            audio = subprocess.run(mux, capture_output=True, check=False).returncode == 0
        commit_file(final_tmp if audio else video_tmp, output, overwrite=overwrite)
        return done, audio
    finally:
        errors.close()
        for path in (video_tmp, final_tmp):
            with contextlib.suppress(OSError):
                path.unlink()


def _temp_path(output: Path, suffix: str) -> Path:
    r"""A fresh temporary file next to ``output`` with its extension (ffmpeg picks the
    container from it)."""

    try:
        fd, name = tempfile.mkstemp(prefix=tmp_prefix(output), suffix=suffix, dir=output.parent)
    except OSError as err:
        raise OutputError(f"{output}: cannot create a file: {err.strerror or err}") from err
    os.close(fd)
    return Path(name)
