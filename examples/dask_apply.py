r"""Recolour a folder of images on a Dask cluster with one saved look.

The unit of work is :func:`otcolor.apply.apply_one`, a module-level function of (map file,
image path, output path): it pickles by reference, keeps no state, and writes the same bytes
as ``otcolor apply MAP IMAGE -o OUTPUT`` (atomically), so tasks may run on any worker, in any
order, and be retried. Workers need otcolor installed and the paths visible (a shared file
system, or one machine). Install with ``pip install 'otcolor[dask]'``.

Usage::

    python examples/dask_apply.py look.otmap photos/ -o graded/ --workers 2
    python examples/dask_apply.py look.otmap photos/ -o graded/ --scheduler tcp://host:8786

It prints one JSON line: images, seconds and images per second.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dask.distributed import Client, LocalCluster

from otcolor.apply import apply_one, expand_inputs


def apply_on_dask(
    client: Client,
    map_path: str | Path,
    inputs: list[str | Path],
    output: str | Path,
    *,
    regrain: bool | None = None,
    force: bool = False,
) -> list[str]:
    r"""Submits one :func:`apply_one` task per image and waits for all of them.

    Arguments:
        client: a connected ``dask.distributed`` client.
        map_path: the ``.otmap`` file.
        inputs: image files and folders of images (as ``otcolor apply`` takes them).
        output: the output folder (created here, on the client's machine).
        regrain: override the map's choice (``None``: as the map was made).

    Returns:
        The output paths, in the order of the inputs.
    """

    files, _ = expand_inputs(inputs)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise ValueError("two inputs share a file name; their outputs would collide")
    futures = client.map(
        apply_one,
        [str(map_path)] * len(files),
        [str(f) for f in files],
        [str(output / f.name) for f in files],
        regrain=regrain,
        force=force,
        pure=False,  # a rerun must write its files again, not return a cached result
    )
    return client.gather(futures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("map_file")
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--workers", type=int, default=2, help="local worker processes")
    parser.add_argument("--scheduler", help="address of a running scheduler instead")
    parser.add_argument("--regrain", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        # One thread per worker: torch already uses several threads for a large image, and
        # processes sidestep the GIL for decoding and encoding.
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True)
        client = Client(cluster)
    with client:
        client.wait_for_workers(args.workers if not args.scheduler else 1)
        began = time.perf_counter()
        outputs = apply_on_dask(
            client,
            args.map_file,
            args.inputs,
            args.output,
            regrain=args.regrain,
            force=args.force,
        )
        seconds = time.perf_counter() - began
    print(
        json.dumps(
            {
                "images": len(outputs),
                "seconds": round(seconds, 3),
                "images_per_s": round(len(outputs) / seconds, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
