r"""ffmpeg and ffprobe as child processes: finding them, naming files to them safely, probing a
clip, decoding its frames through a pipe, and checking what an encoder wrote.

Every path reaches ffmpeg as ``file:`` + its absolute form (:func:`ffmpeg_path`), so a clip
named ``-dash.mp4`` is never read as an option and ``http:x.mp4`` never as a protocol. ffmpeg
exits 0 when it cannot finish writing its output (a full disk, ``Error writing trailer``), so
encoders run with ``-xerror`` and their output is read back (:func:`count_packets`) before it
is trusted.
"""

from __future__ import annotations

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "count_packets",
    "decode_frames",
    "ffmpeg_path",
    "find_ffmpeg",
    "io_failure",
    "last_line",
    "probe_video",
]

import contextlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import InputError, OutputError, UsageError

_HINT_FFMPEG = "install ffmpeg (e.g. 'apt install ffmpeg' or 'brew install ffmpeg') and retry"

#: Containers ``otcolor video`` writes, by extension: each holds H.264 video and copied audio.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".m4v", ".mov", ".mkv", ".avi")

#: ffprobe reads headers, and with ``count_packets`` every packet header: seconds for any clip.
_PROBE_SECONDS = 120

#: ffmpeg's words for the operating-system errors that mean the output could not be written.
_IO_FAILURES = (
    "No space left on device",
    "Disk quota exceeded",
    "File too large",
    "Input/output error",
    "Read-only file system",
    "Permission denied",
)


@dataclass
class VideoInfo:
    r"""What ffprobe says about a clip's first video stream."""

    width: int
    height: int
    fps: str  # a rational, e.g. "30000/1001"
    frames: int | None  # None when the container does not say
    audio: bool


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


def ffmpeg_path(path: str | os.PathLike[str]) -> str:
    r"""A path as ffmpeg and ffprobe must get it: ``file:`` and the absolute path, never an
    option (``-dash.mp4``) nor another protocol (``http:x.mp4``, ``concat:a|b``).

    Example:
        >>> ffmpeg_path("/clips/-dash.mp4")
        'file:/clips/-dash.mp4'
    """

    return "file:" + os.path.abspath(os.fspath(path))


def last_line(text: str) -> str:
    r"""The last non-empty line of ffmpeg's messages (its reason for failing)."""

    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "ffmpeg failed"


def io_failure(text: str) -> bool:
    r"""Whether ffmpeg's messages report that its output could not be written (disk full, quota,
    read-only...), as opposed to a stream the container cannot hold."""

    return any(reason in text for reason in _IO_FAILURES)


def probe_video(path: str | os.PathLike[str], ffprobe: str) -> VideoInfo:
    r"""Reads the size, frame rate, frame count and audio presence of a clip.

    Raises:
        InputError: the file is missing, not a regular file, or has no video stream ffprobe
            can read.
    """

    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as err:
        raise InputError(f"{path}: no such file") from err
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read: {getattr(err, 'strerror', None) or err}") from err
    if not stat.S_ISREG(mode):  # a FIFO or a device would block ffprobe or never end
        raise InputError(f"{path}: not a regular file", "give a video file")
    command = [ffprobe, "-v", "error", "-show_entries"]
    command += ["stream=codec_type,width,height,r_frame_rate,nb_frames", "-of", "json"]
    streams = _probe_streams(command, path, InputError, "cannot read video")
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None or not _positive(video.get("width")) or not _positive(video.get("height")):
        raise InputError(f"{path}: no video stream")
    frames = str(video.get("nb_frames", ""))
    fps = str(video.get("r_frame_rate", "25/1"))
    try:
        if Fraction(fps) <= 0:
            fps = "25/1"
    except (ValueError, ZeroDivisionError):
        fps = "25/1"
    return VideoInfo(
        width=int(video["width"]),
        height=int(video["height"]),
        fps=fps,
        frames=int(frames) if frames.isdigit() and int(frames) > 0 else None,
        audio=any(s.get("codec_type") == "audio" for s in streams),
    )


def _positive(value: object) -> bool:
    return isinstance(value, int) and value > 0


def count_packets(path: Path, ffprobe: str, output: Path) -> tuple[int, bool]:
    r"""The video packets (one per frame) and whether there is audio in a file otcolor wrote,
    read back from the file itself.

    Raises:
        OutputError: ffprobe cannot read it: the encoder did not finish writing it.
    """

    command = [ffprobe, "-v", "error", "-count_packets", "-show_entries"]
    command += ["stream=codec_type,nb_read_packets", "-of", "json"]
    streams = _probe_streams(command, path, OutputError, "the encoded file is unreadable", output)
    video = [s for s in streams if s.get("codec_type") == "video"]
    packets = str(video[0].get("nb_read_packets", "")) if video else ""
    audio = any(s.get("codec_type") == "audio" for s in streams)
    return (int(packets) if packets.isdigit() else 0), audio


def _probe_streams(
    command: list[str],
    path: Path,
    error: type[InputError] | type[OutputError],
    what: str,
    name: Path | None = None,
) -> list[dict]:
    r"""Runs ffprobe on ``path`` and returns its streams; failures raise ``error``."""

    name = name or path
    try:
        done = subprocess.run(
            [*command, ffmpeg_path(path)],
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
            timeout=_PROBE_SECONDS,
        )
    except subprocess.TimeoutExpired as err:
        raise error(f"{name}: {what}: ffprobe took over {_PROBE_SECONDS} s") from err
    if done.returncode != 0:
        raise error(f"{name}: {what}: {last_line(done.stderr)}")
    try:
        streams = json.loads(done.stdout).get("streams", [])
    except (json.JSONDecodeError, AttributeError) as err:
        raise error(f"{name}: {what} (ffprobe output unreadable)") from err
    return [s for s in streams if isinstance(s, dict)] if isinstance(streams, list) else []


@contextlib.contextmanager
def decode_frames(
    ffmpeg: str, path: Path, info: VideoInfo, extra: list[str] | None = None
) -> Iterator[Iterator[np.ndarray]]:
    r"""Yields an iterator over the frames of a clip, each :math:`(H, W, 3)` uint8.

    When the iterator is read to its end, ffmpeg's exit status is checked (a decoding error is
    an :class:`InputError`). When the caller stops early (the encoder failed, an interrupt),
    ffmpeg is killed instead of waited for: it would block forever on a pipe no one reads.
    """

    command = [ffmpeg, "-v", "error", "-nostdin", "-i", ffmpeg_path(path), *(extra or [])]
    command += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    size = info.width * info.height * 3
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
        ended = False

        def frames() -> Iterator[np.ndarray]:
            nonlocal ended
            assert process.stdout is not None
            while True:
                data = process.stdout.read(size)
                if len(data) < size:
                    ended = True
                    return
                yield np.frombuffer(data, np.uint8).reshape(info.height, info.width, 3)

        try:
            yield frames()
            if ended:
                process.wait()
                if process.returncode != 0:
                    errors.seek(0)
                    message = last_line(errors.read().decode(errors="replace"))
                    raise InputError(f"{path}: cannot decode video: {message}")
        finally:
            stop(process)


def stop(process: subprocess.Popen) -> None:
    r"""Ends a child ffmpeg if it still runs, and reaps it; closes its pipes."""

    if process.poll() is None:
        process.kill()
    process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
