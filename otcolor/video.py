r"""Video: one look for a whole clip, applied to every frame through ffmpeg pipes.

The look is fitted once, on pixels pooled from frames spread across the clip (their base
layers, for a regrained look), or loaded from a map file, and every frame goes through the same
:class:`otcolor.color.ColorTable`. By default the look regrains, as a still does: each frame's
own grain is kept, the map moves its base layer (:mod:`otcolor.regrain`), so fresh sensor noise
is amplified far less from frame to frame; the pure map (``regrain=None``) gives a colour the same
output in every frame. Either way a frame's output depends on that frame alone: byte-identical
frames give byte-identical outputs, and a frame comes out as ``otcolor apply`` renders it.
Frames are graded several at a time (:mod:`otcolor.framepipe`). ffmpeg decodes the frames to
raw 8-bit RGB (its default YUV to RGB conversion), otcolor maps them, and ffmpeg encodes them
(H.264, CRF 18, yuv420p when libx264 is available, yuv444p for odd frame sizes); the audio
streams are then copied from the input unchanged. The child processes and paths are
:mod:`otcolor.ffmpeg`'s business.

Outputs are checked before any work: the container (:data:`otcolor.ffmpeg.VIDEO_EXTENSIONS`),
the folder, no input overwritten (the clip, the reference image, the map file), and frames no
larger than ``max_pixels``. The encoded file is read back before it is committed, with the
mode an image would get, together with ``save_map`` (:func:`otcolor.io.outputs_together`).
"""

from __future__ import annotations

__all__ = [
    "MAX_FIT_FRAMES",
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "VideoResult",
    "check_video_outputs",
    "find_ffmpeg",
    "probe_video",
    "transfer_video",
]

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .color import ColorTable
from .device import resolve_device
from .errors import InputError, OutputError, UsageError
from .ffmpeg import (
    VIDEO_EXTENSIONS,
    VideoInfo,
    count_packets,
    decode_frames,
    ffmpeg_path,
    find_ffmpeg,
    io_failure,
    last_line,
    probe_video,
    stop,
)
from .fitting import Callback, FitSettings
from .framepipe import SharedTable, frame_workers, grade_frames, one_thread_per_worker
from .io import (
    DEFAULT_MAX_PIXELS,
    check_distinct_outputs,
    check_output_path,
    finish_file,
    load_image,
    new_file_mode,
    outputs_together,
    tmp_prefix,
)
from .io.files import describe_os_error
from .io.formats import HINT_LIMIT
from .io.mapfile import save_map as write_map
from .look import Look, LookSettings, RegrainConfig
from .pipeline import SAMPLING_SEED, fit_look, provenance, sample_colours, sampling_rng
from .regrain import base_colors


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


def check_video_outputs(
    output: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str] | None],
    *,
    save_map: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> None:
    r"""Checks a clip's outputs before anything is read: a container otcolor writes, a writable
    folder, no input overwritten (the clip, the reference, the map file), no two outputs on
    one path.

    Raises:
        UsageError: unsupported container, output is an input, exists without ``force``...
        OutputError: the folder is missing or not writable.
    """

    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in VIDEO_EXTENSIONS:
        raise UsageError(
            f"{output}: unsupported video extension {suffix or '(none)'}",
            f"use one of {', '.join(VIDEO_EXTENSIONS)}",
        )
    sources = [Path(p) for p in inputs if p is not None]
    check_distinct_outputs([output, save_map], sources)
    check_output_path(output, sources, force=force, image=False)
    if save_map is not None:
        check_output_path(save_map, [*sources, output], force=force, image=False)


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
    with decode_frames(ffmpeg, path, info, select) as frames:
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


#: The most frames a fit samples (``fit_frames``): beyond a few dozen the pool barely changes.
MAX_FIT_FRAMES = 10_000

#: The look a clip gets when it is fitted and no look settings are given: regrained, as a
#: still is (docs/regrain.md, "Video": the pure map amplifies the grain in time as in space).
VIDEO_LOOK = LookSettings()


def transfer_video(
    source: str | os.PathLike[str],
    reference: str | os.PathLike[str] | None,
    output: str | os.PathLike[str],
    *,
    look: Look | None = None,
    map_file: str | os.PathLike[str] | None = None,
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
        output: the output clip; its extension picks the container
            (:data:`~otcolor.ffmpeg.VIDEO_EXTENSIONS`).
        look: a look to apply instead of fitting one (a map file's, with any overrides).
        map_file: the map file ``look`` was read from: an input, never overwritten.
        fit: how the map is fitted from ``reference``.
        look_settings: the fitted look's settings (default :data:`VIDEO_LOOK`: regrained).
        max_pixels: the largest accepted reference image, and frame (width x height).
        fit_frames: how many frames, spread over the clip, the fit samples pixels from.
        force: replace an existing output (never an input).
        save_map: also write the fitted look as a map file.
        fit_callback: called as ``callback(step, logs)`` during the fit.
        frame_callback: called as ``callback(done, total)`` after each frame (total may be
            ``None`` when the container does not give a frame count).

    Raises:
        UsageError: ffmpeg is missing (exit code 2), bad paths or values.
        InputError: the clip or reference cannot be read, or frames exceed ``max_pixels``
            (exit code 3).
        OutputError: the output cannot be written (exit code 4).
    """

    if (look is None) == (reference is None):
        raise UsageError("give either a reference image or a map file")
    fit = fit or FitSettings()
    look_settings = look_settings or VIDEO_LOOK
    _check_values(fit, look_settings, look, max_pixels, fit_frames)
    start = time.perf_counter()
    source, output = Path(source), Path(output)
    ffmpeg, ffprobe = find_ffmpeg()
    inputs = [source, reference, map_file]
    check_video_outputs(output, inputs, save_map=save_map, force=force)
    info = probe_video(source, ffprobe)
    pixels = info.width * info.height
    if max_pixels is not None and pixels > max_pixels:
        raise InputError(
            f"{source}: frames are {info.width}x{info.height} = {pixels:,} pixels, above the "
            f"limit of {max_pixels:,}",
            HINT_LIMIT,
        )
    warnings: list[str] = []

    with outputs_together():  # the clip and its map file, or neither
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

        table = SharedTable(look)
        if info.width % 2 or info.height % 2:
            warnings.append(
                f"{source}: {info.width}x{info.height} frames are odd-sized, so they are encoded "
                "4:4:4 (4:2:0 needs even sizes); some players cannot play that"
            )
        encoder = _Encoder(ffmpeg, ffprobe, source, output, info, overwrite=force)
        done, audio, note = encoder.run(table, frame_callback)
    warnings += note
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


def _check_values(
    fit: object, settings: object, look: object, max_pixels: object, fit_frames: object
) -> None:
    r"""The library's own arguments, checked before ffmpeg runs (the CLI checks its options)."""

    if not isinstance(fit, FitSettings):
        raise UsageError(f"fit must be a FitSettings, got {type(fit).__name__}")
    if not isinstance(settings, LookSettings):
        raise UsageError(f"look_settings must be a LookSettings, got {type(settings).__name__}")
    if look is not None and not isinstance(look, Look):
        raise UsageError(f"look must be a Look, got {type(look).__name__}")
    if max_pixels is not None and not (
        isinstance(max_pixels, int) and not isinstance(max_pixels, bool) and max_pixels >= 1
    ):
        raise UsageError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    if not (
        isinstance(fit_frames, int)
        and not isinstance(fit_frames, bool)
        and 1 <= fit_frames <= MAX_FIT_FRAMES
    ):
        raise UsageError(
            f"fit_frames must be an integer in [1, {MAX_FIT_FRAMES:,}], got {fit_frames!r}"
        )


def _has_encoder(ffmpeg: str, name: str) -> bool:
    done = subprocess.run(
        [ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, check=False
    )
    return any(line.split()[1:2] == [name] for line in done.stdout.splitlines())


class _Encoder:
    r"""Maps every frame of a clip into a new file, checks it and hands it to
    :func:`otcolor.io.finish_file`. The temporary files are removed whatever happens."""

    def __init__(
        self,
        ffmpeg: str,
        ffprobe: str,
        source: Path,
        output: Path,
        info: VideoInfo,
        overwrite: bool,
    ) -> None:
        self.ffmpeg, self.ffprobe = ffmpeg, ffprobe
        self.source, self.output, self.info, self.overwrite = source, output, info, overwrite
        self.temps: list[Path] = []

    def run(
        self, table: ColorTable, callback: Callable[[int, int | None], None] | None
    ) -> tuple[int, bool, list[str]]:
        r"""Returns the frames written, whether audio was copied, and warnings."""

        try:
            video = self._temp()
            done = self._encode(video, table, callback)
            chosen, audio, notes = video, False, []
            if self.info.audio:
                chosen, audio, notes = self._mux(video)
            self._check(chosen, done, audio)  # what ffmpeg wrote, read back before it counts
            # ffmpeg does not sync; the rename must not land before the bytes do.
            fd = os.open(chosen, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.chmod(chosen, new_file_mode(self.output))  # mkstemp made it 0600
            finish_file(chosen, self.output, overwrite=self.overwrite)
            self.temps.remove(chosen)  # committed, or staged: no longer ours to remove
            return done, audio, notes
        except OSError as err:
            message = f"{self.output}: cannot write: {describe_os_error(err)}"
            raise OutputError(message, "check free space and permissions") from err
        finally:
            for path in self.temps:
                with contextlib.suppress(OSError):
                    path.unlink()

    def _encode(
        self, video: Path, table: ColorTable, callback: Callable[[int, int | None], None] | None
    ) -> int:
        info = self.info
        # 4:2:0 is what every player reads, but it halves both sizes: odd frames need 4:4:4.
        chroma = "yuv444p" if info.width % 2 or info.height % 2 else "yuv420p"
        codec = ["-c:v", "libx264", "-crf", "18", "-pix_fmt", chroma]
        if not _has_encoder(self.ffmpeg, "libx264"):
            codec = []
        # -xerror: ffmpeg otherwise exits 0 when it cannot finish writing (a full disk).
        command = [self.ffmpeg, "-v", "error", "-xerror", "-nostdin", "-y"]
        command += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{info.width}x{info.height}"]
        command += ["-framerate", info.fps, "-i", "-", *codec, ffmpeg_path(video)]
        done = 0
        with tempfile.TemporaryFile() as errors:
            encoder = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors
            )
            try:
                assert encoder.stdin is not None
                workers = frame_workers(table.look) if isinstance(table, SharedTable) else 1
                with (
                    decode_frames(self.ffmpeg, self.source, info) as frames,
                    one_thread_per_worker(workers),
                ):
                    # A regrained look is spatial, per frame: see docs/regrain.md, "Video".
                    for mapped in grade_frames(frames, table, workers):
                        try:
                            encoder.stdin.write(mapped.tobytes())
                        except BrokenPipeError:
                            break  # the encoder failed: its message says why, below
                        done += 1
                        if callback is not None:
                            callback(done, info.frames)
                with contextlib.suppress(BrokenPipeError):
                    encoder.stdin.close()
                encoder.wait()
            finally:
                stop(encoder)
            errors.seek(0)
            message = errors.read().decode(errors="replace")
        if encoder.returncode != 0:
            reason = self._reason(message, video)
            raise OutputError(f"{self.output}: ffmpeg could not encode: {reason}")
        if done == 0:
            raise InputError(f"{self.source}: no frame could be decoded")
        return done

    def _mux(self, video: Path) -> tuple[Path, bool, list[str]]:
        r"""Copies the source's audio next to the encoded video; a container that cannot hold
        it keeps the video alone, with a warning. A write failure is an error."""

        final = self._temp()
        command = [self.ffmpeg, "-v", "error", "-xerror", "-nostdin", "-y"]
        command += ["-i", ffmpeg_path(video), "-i", ffmpeg_path(self.source)]
        command += ["-map", "0:v:0", "-map", "1:a?", "-c", "copy", ffmpeg_path(final)]
        done_mux = subprocess.run(command, capture_output=True, text=True, errors="replace")
        if done_mux.returncode == 0:
            return final, True, []
        reason = self._reason(done_mux.stderr, final)
        if done_mux.returncode < 0 or io_failure(done_mux.stderr):  # killed, or disk full
            raise OutputError(f"{self.output}: ffmpeg could not write the audio: {reason}")
        return video, False, [f"{self.output}: the audio could not be copied ({reason})"]

    def _reason(self, messages: str, temp: Path) -> str:
        r"""ffmpeg's last line, naming the output rather than its temporary file."""

        return last_line(messages).replace(ffmpeg_path(temp), str(self.output))

    def _check(self, path: Path, frames: int, audio: bool) -> None:
        r"""Reads the file ffmpeg wrote back: every frame must be there (and the audio)."""

        packets, has_audio = count_packets(path, self.ffprobe, self.output)
        if packets != frames or (audio and not has_audio):
            raise OutputError(
                f"{self.output}: the encoded file holds {packets} of {frames} frames"
                + ("" if has_audio or not audio else " and no audio"),
                "check free space; ffmpeg did not finish writing it",
            )

    def _temp(self) -> Path:
        r"""A fresh temporary file beside the output, with its extension (ffmpeg picks the
        container from it)."""

        try:
            fd, name = tempfile.mkstemp(
                prefix=tmp_prefix(self.output), suffix=self.output.suffix, dir=self.output.parent
            )
        except OSError as err:
            message = f"{self.output}: cannot create a file: {describe_os_error(err)}"
            raise OutputError(message) from err
        os.close(fd)
        self.temps.append(Path(name))
        return Path(name)
