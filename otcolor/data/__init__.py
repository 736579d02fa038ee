r"""Images bundled with the package: the default pairs of ``otcolor bench pixels`` and the
photos of ``otcolor bench known``.

They ship as package data and are found through :mod:`importlib.resources`, so an installed
wheel finds them without a checkout (the checkout's ``examples/`` and ``benchmarks/images/``
entries are symbolic links to these files).
"""

from __future__ import annotations

__all__ = ["IMAGES", "image_path"]

from importlib import resources
from pathlib import Path

#: The bundled images, by file name.
IMAGES: tuple[str, ...] = (
    "astronaut.jpg",
    "chelsea.jpg",
    "coffee.jpg",
    "ocean_day.jpg",
    "ocean_sunset.jpg",
    "rocket.jpg",
)


def image_path(name: str) -> Path:
    r"""The file system path of the bundled image ``name`` (a file name or any path ending in
    one: only the last component counts).

    Raises:
        FileNotFoundError: not a bundled image, or the package was installed without its data.
    """

    base = Path(name).name
    if base not in IMAGES:
        raise FileNotFoundError(f"{name}: not a bundled image")
    # Wheels and checkouts are unpacked on disk, so the resource is a real path; a zipped
    # install (not supported by otcolor's decoders, which open paths) would fail here clearly.
    path = Path(str(resources.files(__name__).joinpath(base)))
    if not path.is_file():
        raise FileNotFoundError(f"the bundled image {base} is missing from {path.parent}")
    return path
