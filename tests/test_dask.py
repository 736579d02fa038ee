r"""The Dask recipe (examples/dask_apply.py) on a LocalCluster with 2 workers: outputs are the
bytes ``otcolor apply`` writes, and the unit of work pickles by reference."""

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
from dask import distributed  # the test extra has it: missing fails, never skips
from PIL import Image
from typer.testing import CliRunner

from otcolor.apply import apply_one
from otcolor.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def load_recipe():
    spec = importlib.util.spec_from_file_location("dask_apply", ROOT / "examples/dask_apply.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("dask")
    rng = np.random.default_rng(0)
    photos = tmp / "photos"
    photos.mkdir()
    for k in range(6):
        yy, xx = np.mgrid[0:40, 0:56] / 56.0
        img = np.stack([0.2 + 0.6 * xx, 0.3 + 0.5 * yy, 0.4 + 0.2 * k / 6 + 0 * xx], -1)
        img = np.clip(img + 0.03 * rng.standard_normal(img.shape), 0, 1)
        suffix = "jpg" if k % 3 == 2 else "png"  # JPEG too: the encoder must match as well
        Image.fromarray(np.round(img * 255).astype(np.uint8)).save(photos / f"p{k}.{suffix}")
    target = tmp / "target.png"
    Image.fromarray(rng.integers(80, 220, (32, 32, 3)).astype(np.uint8)).save(target)
    look = tmp / "look.otmap"
    fit = runner.invoke(
        app,
        [
            "transfer",
            str(photos / "p0.png"),
            str(target),
            "-o",
            str(tmp / "fit.png"),
            "--save-map",
            str(look),
            "--steps",
            "5",
            "--samples",
            "2000",
            "--device",
            "cpu",
            "--quiet",
        ],
    )
    assert fit.exit_code == 0, fit.output
    return look, photos


@pytest.fixture(scope="module")
def client():
    # Worker processes (not threads): each unpickles apply_one by reference in a fresh
    # interpreter, as on a real cluster.
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as connected,
    ):
        connected.wait_for_workers(2)
        yield connected


def test_unit_of_work_pickles_by_reference() -> None:
    assert pickle.loads(pickle.dumps(apply_one)) is apply_one


@pytest.mark.parametrize("regrain", [True, False])
def test_local_cluster_matches_otcolor_apply(
    folder: tuple[Path, Path], client: distributed.Client, tmp_path: Path, regrain: bool
) -> None:
    look, photos = folder
    reference = tmp_path / "reference"
    flag = "--regrain" if regrain else "--no-regrain"
    done = runner.invoke(app, ["apply", str(look), str(photos), "-o", str(reference), flag])
    assert done.exit_code == 0, done.output

    outputs = load_recipe().apply_on_dask(
        client, look, [photos], tmp_path / "dask", regrain=regrain
    )
    names = sorted(p.name for p in photos.iterdir())
    assert [Path(o).name for o in outputs] == names
    for name in names:
        assert (tmp_path / "dask" / name).read_bytes() == (reference / name).read_bytes(), name
