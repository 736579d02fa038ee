r"""The ``otcolor`` command line; importing it registers every subcommand on :data:`app`."""

from __future__ import annotations

__all__ = ["DeviceName", "InitName", "LossName", "ModelName", "app", "main"]

# The import order is the order of the commands in ``otcolor --help``.
from . import transfer_cmd  # noqa: F401, I001  (registers ``otcolor transfer``)
from . import mnist_cmd  # noqa: F401  (registers ``otcolor mnist``)
from . import maps_cmd  # noqa: F401  (registers ``otcolor apply``, ``lut`` and ``video``)
from . import preview_cmd  # noqa: F401  (registers ``otcolor preview``)
from . import bench_cmd  # noqa: F401  (registers ``otcolor bench ...``)
from ._app import app, main
from .options import DeviceName, InitName, LossName, ModelName
