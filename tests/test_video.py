r"""Tests of ``otcolor video`` on a tiny clip that ffmpeg generates (ffmpeg required: conftest)."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from otcolor.cli import app

runner = CliRunner()
needs_ffmpeg = pytest.mark.usefixtures("ffmpeg")  # fails without ffmpeg (conftest)


def _frames(path: Path) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, 48, 64, 3)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("video")
    source, reference = tmp / "clip.mp4", tmp / "ref.png"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x48:rate=10:duration=1.5",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=1.5",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            str(source),
        ],
        check=True,
    )
    rng = np.random.default_rng(0)
    ref = rng.uniform([0.6, 0.3, 0.0], [1.0, 0.6, 0.3], (40, 40, 3))
    Image.fromarray(np.round(ref * 255).astype(np.uint8)).save(reference)
    return source, reference


@needs_ffmpeg
@pytest.mark.slow
def test_video_fits_once_and_keeps_frames_and_audio(
    clip: tuple[Path, Path], tmp_path: Path
) -> None:
    source, reference = clip
    output, look = tmp_path / "out.mp4", tmp_path / "look.otmap"
    args = [
        "video",
        str(source),
        str(reference),
        "-o",
        str(output),
        "--steps",
        "5",
        "--samples",
        "1000",
        "--device",
        "cpu",
        "--fit-frames",
        "4",
        "--save-map",
        str(look),
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["frames"] == 15 and payload["audio"] is True and payload["fitted"] is True
    before, after = _frames(source), _frames(output)
    assert after.shape == before.shape
    # warmer, as the reference: red up, blue down
    assert after[..., 0].mean() > before[..., 0].mean() + 10
    assert after[..., 2].mean() < before[..., 2].mean() - 10

    from otcolor.io.mapfile import load_map

    saved = load_map(look)  # regrained by default, as a still
    assert saved.look.regrain is not None and saved.metadata["fit"]["smoothness"] == 0.3
    again = tmp_path / "again.mp4"
    result = runner.invoke(app, ["video", str(source), "--map", str(look), "-o", str(again)])
    assert result.exit_code == 0, result.stderr
    assert np.array_equal(_frames(again), after)  # same map, same frames, same bytes
    exists = runner.invoke(app, ["video", str(source), "--map", str(look), "-o", str(again)])
    assert exists.exit_code == 2 and "--force" in exists.stderr


def test_missing_ffmpeg_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    source, reference = tmp_path / "in.mp4", tmp_path / "ref.png"
    source.write_bytes(b"not really a video")
    Image.new("RGB", (4, 4)).save(reference)
    result = runner.invoke(
        app, ["video", str(source), str(reference), "-o", str(tmp_path / "o.mp4")]
    )
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "ffmpeg" in lines[0] and lines[0].startswith("Error: ")


@needs_ffmpeg
def test_odd_sized_frames_are_encoded(clip: tuple[Path, Path], tmp_path: Path) -> None:
    _, reference = clip
    source, output = tmp_path / "odd.mp4", tmp_path / "out.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=33x25:rate=5:duration=0.6",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv444p",
            str(source),
        ],
        check=True,
    )
    args = [
        "video",
        str(source),
        str(reference),
        "-o",
        str(output),
        "--steps",
        "3",
        "--samples",
        "500",
        "--device",
        "cpu",
        "--fit-frames",
        "2",
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert (payload["width"], payload["height"]) == (33, 25)
    assert any("odd-sized" in w for w in payload["warnings"])
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(output), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    assert len(raw) == payload["frames"] * 33 * 25 * 3


@needs_ffmpeg
def test_video_regrain_fits_base_layers_and_maps_each_frame(
    clip: tuple[Path, Path], tmp_path: Path
) -> None:
    source, reference = clip
    output, look = tmp_path / "rg.mp4", tmp_path / "rg.otmap"
    args = ["video", str(source), str(reference), "-o", str(output), "--steps", "5", "--samples",
            "1000", "--device", "cpu", "--fit-frames", "2", "--save-map", str(look), "--regrain",
            "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 15
    from otcolor.io.mapfile import load_map

    saved = load_map(look)
    assert saved.look.regrain is not None and saved.metadata["fit"]["smoothness"] == 0.3
    assert saved.metadata["fit"]["estimator"] == "full"  # the provenance video records
    before, after = _frames(source), _frames(output)
    assert after.shape == before.shape
    assert after[..., 0].mean() > before[..., 0].mean() + 10
    again = tmp_path / "again.mp4"  # the map holds the look: regrained, with no flag repeated
    result = runner.invoke(app, ["video", str(source), "--map", str(look), "-o", str(again)])
    assert result.exit_code == 0, result.stderr
    assert np.array_equal(_frames(again), after)
    pure = tmp_path / "pure.mp4"
    args = ["video", str(source), "--map", str(look), "-o", str(pure), "--no-regrain"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert not np.array_equal(_frames(pure), after)  # the regrain is spatial, not the table


def _held_clip(path: Path, frames: int) -> np.ndarray:
    r"""A clip of one noisy gradient frame repeated, encoded losslessly: its decoded frames are
    byte-identical (checked). Returns the decoded frames."""

    rng = np.random.default_rng(1)
    ramp = np.linspace(30, 220, 64)[None, :, None] + np.array([0.0, 15.0, -25.0])
    frame = np.clip(np.round(ramp + rng.normal(0, 3, (48, 64, 3))), 0, 255).astype(np.uint8)
    command = ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "64x48",
               "-framerate", "10", "-i", "-", "-c:v", "libx264", "-qp", "0", "-pix_fmt",
               "yuv444p", str(path)]  # fmt: skip
    subprocess.run(command, input=frame.tobytes() * frames, check=True)
    decoded = _frames(path)
    assert len(decoded) == frames and all(np.array_equal(decoded[0], f) for f in decoded)
    return decoded


@needs_ffmpeg
def test_identical_frames_stay_identical_and_match_the_approved_still(
    clip: tuple[Path, Path], tmp_path: Path
) -> None:
    _, reference = clip
    held, look, output = tmp_path / "held.mp4", tmp_path / "look.otmap", tmp_path / "out.mp4"
    source = _held_clip(held, 6)
    args = ["video", str(held), str(reference), "-o", str(output), "--steps", "3", "--samples",
            "500", "--device", "cpu", "--fit-frames", "2", "--save-map", str(look), "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    graded = _frames(output)
    assert len(graded) == 6 and all(np.array_equal(graded[0], f) for f in graded)
    assert graded[0][..., 0].mean() > source[0][..., 0].mean() + 10  # graded, not copied

    # The approved still: the frame as a picture, through `otcolor apply` (which regrains).
    frame, still = tmp_path / "frame.png", tmp_path / "still.png"
    Image.fromarray(source[0]).save(frame)
    result = runner.invoke(app, ["apply", str(look), str(frame), "-o", str(still)])
    assert result.exit_code == 0, result.stderr
    approved = np.asarray(Image.open(still).convert("RGB"))
    from otcolor.color import ColorTable
    from otcolor.framepipe import grade_frames
    from otcolor.io.mapfile import load_map

    (before_encoding,) = grade_frames([source[0]], ColorTable(load_map(look).look))
    assert np.array_equal(before_encoding, approved)  # what the encoder is given: the still
    # and what it wrote, within H.264's losses (4:2:0 chroma, CRF 18)
    assert np.abs(graded[0].astype(int) - approved).mean() < 4
