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

from otcolor.color import Look, apply_look
from otcolor.fit import FitSettings, fit_color_map, sample_pixels
from otcolor.io import load_image, save_image

source_path, target_path, output_path = (
    sys.argv[1:4]
    if len(sys.argv) == 4
    else ("examples/ocean_day.jpg", "examples/ocean_sunset.jpg", "ocean_library.png")
)

#####################################################################
# Sample colours. Fitting works on a fixed number of pixels, so its time does not grow with
# the image: 50,000 pixels of each image are plenty for a 3-D distribution.

source = load_image(source_path)  # rgb: (H, W, 3) float32 in [0, 1], EXIF orientation applied
target = load_image(target_path)
rng = np.random.default_rng(0)
x = sample_pixels(source, 50_000, rng)  # (50000, 3)
y = sample_pixels(target, 50_000, rng)

#####################################################################
# Fit. The default solves exact OT on chunks of 1000 pixel pairs and distils the plan into a
# C-MGN (a monotone gradient network) by L-BFGS; ``smoothness`` trades closeness for less
# amplification of small colour differences.

fitted = fit_color_map(x, y, FitSettings(model="cmgn", smoothness=4.0, seed=0))
print(f"fitted in {fitted.seconds:.1f} s, {len(fitted.history['loss'])} iterations")

#####################################################################
# The map is the gradient of a convex function: <T(a) - T(b), a - b> >= 0 for every pair.

a, b = torch.rand(2, 10_000, 3)
with torch.no_grad():
    inner = ((fitted.map(a) - fitted.map(b)) * (a - b)).sum(-1)
print(f"smallest <T(a) - T(b), a - b> over 10,000 random pairs: {inner.min():.2e}")

#####################################################################
# Apply to every pixel through the route the CLI ships (exact per 8-bit colour, bounded
# memory), and save atomically with the source's
# metadata (ICC profile, EXIF, DPI) and alpha.

out = apply_look(Look(fitted.map, device=fitted.device), source.rgb)  # (H, W, 3) in [0, 1]
save_image(output_path, out, alpha=source.alpha, like=source)
print(f"wrote {output_path}")
