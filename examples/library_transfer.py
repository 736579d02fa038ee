r"""
Colour transfer with the otcolor library
========================================

Fits a monotone map between the colours of two images, checks that it is monotone, and applies it,
using only the public library (no CLI). Run from the repository root::

    python examples/library_transfer.py [SOURCE TARGET OUTPUT]
"""

import sys

import numpy as np
import torch

from otcolor.fitting import FitSettings
from otcolor.io import load_image, save_image
from otcolor.look import LookSettings
from otcolor.pipeline import fit_look, render, sample_colours

source_path, target_path, output_path = (
    sys.argv[1:4]
    if len(sys.argv) == 4
    else ("examples/ocean_day.jpg", "examples/ocean_sunset.jpg", "ocean_library.png")
)

#####################################################################
# Sample colours. Fitting works on a fixed number of pixels, so its time does not grow with
# the image: 50,000 pixels of each image are plenty for a 3-D distribution. The look regrains
# (its default): the map is fitted between the images' base layers, so it stretches their
# structure, not their grain.

look_settings = LookSettings()  # sRGB, full strength, regrained
source = load_image(source_path)  # rgb: (H, W, 3) float32 in [0, 1], EXIF orientation applied
target = load_image(target_path)
rng = np.random.default_rng(0)
x = sample_colours(source, 50_000, rng, look_settings.regrain)  # (N, 3)
y = sample_colours(target, 50_000, rng, look_settings.regrain)

#####################################################################
# Fit. The default estimator fits the whole weighted colour distributions: a start on the
# classic histogram-matching chain, then a full sliced-W2 refinement of a C-MGN (a monotone
# gradient network) by L-BFGS; ``smoothness`` trades closeness for less amplification of small
# colour differences.

made = fit_look(x, y, FitSettings(model="cmgn", smoothness=4.0, seed=0), look_settings)
fitted = made.fitted
print(f"fitted in {fitted.seconds:.1f} s, {len(fitted.history['loss'])} iterations")

#####################################################################
# The map is the gradient of a convex function: <T(a) - T(b), a - b> >= 0 for every pair.

a, b = torch.rand(2, 10_000, 3)
with torch.no_grad():
    inner = ((fitted.map(a) - fitted.map(b)) * (a - b)).sum(-1)
print(f"smallest <T(a) - T(b), a - b> over 10,000 random pairs: {inner.min():.2e}")

#####################################################################
# Render through the route the CLI ships (the map once per distinct 8-bit colour, the regrain
# in bounded memory), and save atomically with the source's metadata (ICC profile, EXIF, DPI)
# and alpha.

out = render(made.look, source.rgb)  # (H, W, 3) in [0, 1]
save_image(output_path, out, alpha=source.alpha, like=source)
print(f"wrote {output_path}")
