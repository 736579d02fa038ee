r"""Issue 32, class 5: video against hostile names, outputs, sizes and a full disk.

A full disk is a wrapper ``ffmpeg`` first on ``PATH`` that runs the real one under a file size
limit (``ulimit -f``) with SIGXFSZ ignored: every write past the limit fails with EFBIG, as
ENOSPC would, and ffmpeg reports it the way it reports a full disk (and exits 0 without
``-xerror``). ffmpeg and ffprobe are required (conftest's ``ffmpeg`` fixture).
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import pytest
import torch
from harness import FAST, pixels, run, temp_files
from PIL import Image

import otcolor.video
from otcolor.errors import InputError, UsageError
from otcolor.io.mapfile import load_map, save_map
from otcolor.look import Look
from otcolor.models import AffineMap, ColorMap
from otcolor.video import VideoInfo, transfer_video

pytestmark = pytest.mark.usefixtures("ffmpeg")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=1",
         "-f", "lavfi", "-i", "sine=duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture
def look(tmp_path: Path) -> Path:
    path = tmp_path / "look.otmap"
    inner = AffineMap(torch.diag(torch.tensor([1.1, 0.9, 0.8])), torch.full((3,), 0.05))
    save_map(path, Look(ColorMap(inner, torch.tensor([0.4, 0.5, 0.6]), 0.5).eval()))
    return path


def frames(path: Path) -> int:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0", "-show_entries",
         "stream=nb_read_packets", "-of", "csv=p=0", "file:" + str(path.resolve())],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(done.stdout.strip())


def wrap_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    r"""A fake ``ffmpeg`` first on PATH: ``body`` (bash), which ends by running the real one."""

    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "ffmpeg"
    real = shutil.which("ffmpeg")
    script.write_text(f"#!/bin/bash\nREAL={real}\n{body}\n")
    script.chmod(0o755)
    (folder / "ffprobe").symlink_to(shutil.which("ffprobe"))  # type: ignore[arg-type]
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def full_disk(kib: int) -> str:
    r"""The wrapper's body for a disk that takes ``kib`` KiB per file (the 1 s clip encodes to
    about 3 KiB of video, 13 KiB with its audio)."""

    return f'trap "" XFSZ\nulimit -f {kib}\nexec "$REAL" "$@"'


# Names that look like options or protocols


@pytest.mark.parametrize("name", ["./-dash.mp4", "concat:a|http:b.mp4"])
def test_a_clip_named_like_an_option_is_a_file(
    tmp_path: Path, clip: Path, look: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(clip, tmp_path / Path(name).name)
    output = "-out.mp4"
    args = ["video", "--map", str(look), "-o", output, "--", name]
    run(args, [tmp_path / Path(name).name, look], code=0)
    assert frames(tmp_path / output) == 10


# Outputs checked before any work, never an input


@pytest.mark.parametrize("name", ["out.xyz", "out", "look.otmap", "out.png", "out.webm"])
def test_an_unknown_container_is_refused_before_ffmpeg_runs(
    tmp_path: Path, clip: Path, look: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    runs: list[object] = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: runs.append(a))
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: runs.append(a))
    before = look.read_bytes()
    run(["video", str(clip), "--map", str(look), "-o", str(tmp_path / name), "--force"],
        [clip, look], code=2, phrase="unsupported video extension")  # fmt: skip
    assert runs == [] and look.read_bytes() == before


@pytest.mark.parametrize("spelling", ["same", "dot", "symlink"])
def test_the_map_file_is_an_input_even_with_force(
    tmp_path: Path, clip: Path, look: Path, spelling: str
) -> None:
    disguised = tmp_path / "look.mp4"  # a map file with a container's extension
    shutil.copy(look, disguised)
    output = {
        "same": disguised,
        "dot": tmp_path / "sub" / ".." / "look.mp4",
        "symlink": tmp_path / "alias.mp4",
    }[spelling]
    (tmp_path / "sub").mkdir()
    if spelling == "symlink":
        output.symlink_to(disguised)
    args = ["video", str(clip), "--map", str(disguised), "-o", str(output), "--force"]
    run(args, [clip, disguised], code=2, phrase="refusing to overwrite an input")
    load_map(disguised)  # intact


def test_frames_over_the_pixel_limit_are_refused_before_decoding(
    tmp_path: Path, clip: Path, look: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "out.mp4"
    run(["video", str(clip), "--map", str(look), "-o", str(output), "--max-pixels", "3000"],
        [clip, look], code=3, phrase="64x48 = 3,072 pixels, above the limit of 3,000")  # fmt: skip
    huge = VideoInfo(width=16_000, height=16_000, fps="25/1", frames=1, audio=False)
    monkeypatch.setattr(otcolor.video, "probe_video", lambda *a: huge)
    monkeypatch.setattr(otcolor.video, "decode_frames", None)  # never reached
    with pytest.raises(InputError, match="16000x16000 = 256,000,000 pixels"):
        transfer_video(clip, None, output, look=load_map(look).look)  # the default limit
    assert not output.exists() and temp_files(tmp_path) == []


@pytest.mark.parametrize(
    "kwargs",
    [{"fit_frames": 0}, {"fit_frames": 10**6}, {"max_pixels": 0}, {"fit": "fast"}],
)
def test_transfer_video_checks_its_arguments_before_ffmpeg_runs(
    tmp_path: Path, clip: Path, look: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict
) -> None:
    runs: list[object] = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: runs.append(a))
    with pytest.raises(UsageError):
        transfer_video(clip, None, tmp_path / "o.mp4", look=load_map(look).look, **kwargs)
    assert runs == []


# What is written: its mode, and only when complete


def test_a_new_video_gets_the_mode_a_new_image_gets(
    tmp_path: Path, clip: Path, look: Path
) -> None:
    output = tmp_path / "out.mp4"
    umask = os.umask(0o022)
    try:
        run(["video", str(clip), "--map", str(look), "-o", str(output)], [clip], code=0)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(output.stat().st_mode) == 0o644  # mkstemp's 0600 before


@pytest.mark.parametrize(
    ("stage", "kib", "phrase"),
    [("encoding", 2, "could not encode"), ("copying-the-audio", 8, "could not write the audio")],
)
def test_a_full_disk_is_exit_4_and_writes_nothing(
    tmp_path: Path,
    clip: Path,
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
    kib: int,
    phrase: str,
) -> None:
    reference = tmp_path / "ref.png"
    Image.fromarray(pixels(12, 14)).save(reference)
    wrap_ffmpeg(tmp_path, monkeypatch, full_disk(kib))
    output, saved = tmp_path / "out.mkv", tmp_path / "saved.otmap"
    args = ["video", str(clip), str(reference), "-o", str(output), *FAST]
    run([*args, "--save-map", str(saved)], [clip, reference], code=4, phrase=phrase)
    assert not output.exists() and not saved.exists()  # the clip and its map: neither


def test_the_encoded_file_is_read_back_even_when_ffmpeg_says_it_worked(
    tmp_path: Path, clip: Path, look: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without -xerror ffmpeg exits 0 over a truncated file: the read-back must catch it.
    strip = (
        'args=(); for a in "$@"; do [ "$a" != -xerror ] && args+=("$a"); done\nset -- "${args[@]}"'
    )
    wrap_ffmpeg(tmp_path, monkeypatch, f"{strip}\n{full_disk(8)}")
    output = tmp_path / "out.mp4"
    run(["video", str(clip), "--map", str(look), "-o", str(output)], [clip, look], code=4)
    assert not output.exists()


def test_an_encoder_that_dies_at_once_neither_hangs_nor_leaves_files(
    tmp_path: Path, clip: Path, look: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The decoder keeps writing frames no one reads (10 frames: more than a pipe holds): it
    # must be stopped, not waited for. SIGALRM turns a hang into a failure.
    dies = 'case " $* " in *" -framerate "*) echo "encoder refused" >&2; exit 1;; esac\n'
    wrap_ffmpeg(tmp_path, monkeypatch, dies + 'exec "$REAL" "$@"')

    def hung(signum: int, frame: object) -> None:
        raise TimeoutError("the video command hung")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        output = tmp_path / "out.mp4"
        args = ["video", str(clip), "--map", str(look), "-o", str(output)]
        run(args, [clip, look], code=4, phrase="encoder refused")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert not output.exists()
