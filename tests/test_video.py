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
