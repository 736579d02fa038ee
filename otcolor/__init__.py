r"""otcolor: colour transfer with learned optimal-transport (Brenier) maps.

A map :math:`T = \nabla\varphi` with :math:`\varphi` convex (a monotone gradient network or the
gradient of an input-convex network) is fitted so that it pushes the colours of one image onto
those of another, then applied to every pixel.
"""

__version__ = "0.1.0"

# Submodules load on first use (``import otcolor.transfer``): importing the package alone costs
# nothing and changes nothing, so the console script's interrupt guard runs before torch loads.
