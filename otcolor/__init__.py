r"""otcolor: colour transfer with learned optimal-transport (Brenier) maps.

A map :math:`T = \nabla\varphi` with :math:`\varphi` convex (a monotone gradient network or the
gradient of an input-convex network) is fitted so that it pushes the colours of one image onto
those of another, then applied to every pixel.
"""

__version__ = "0.1.0"

from . import errors, gaussian, image, losses, metrics, models, nn, train, transfer  # noqa: E402,F401
