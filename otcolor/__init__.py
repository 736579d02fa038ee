r"""otcolor: colour transfer with learned optimal-transport (Brenier) maps.

A map :math:`T = \nabla\varphi` with :math:`\varphi` convex (a monotone gradient network or the
gradient of an input-convex network) is fitted so that it pushes the colours of one image onto
those of another, then applied to every pixel.
"""

__version__ = "0.1.0"

import os as _os

# torch's CPU threads (OpenMP) spin while they wait for each other. On a 2-core machine with
# anything else running, the spinning threads starve the working ones: the default fit took
# 44 s instead of 6 s with one core busy. Passive waiting avoids that; it must be set before
# torch loads OpenMP, and a value the user set wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import errors, gaussian, image, losses, metrics, models, nn, train, transfer  # noqa: E402,F401
