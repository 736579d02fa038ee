r"""Fitting maps: the colour-map fit, its estimators, the Brenier estimator, atoms and trainers.

================================  ==============================================================
module                            job
================================  ==============================================================
:mod:`~otcolor.fitting.colour`     :func:`fit_color_map` and :class:`FitSettings`: the colour fit,
                                   with the one "never worse than the closed form" policy
:mod:`~otcolor.fitting.estimators` the estimators by name, each with its own settings
:mod:`~otcolor.fitting.brenier`    the default estimator's stages (hm-mkl-hm start, refinement)
:mod:`~otcolor.fitting.atoms`      colour distributions as weighted atoms
:mod:`~otcolor.fitting.trainers`   the Adam and L-BFGS loops, one callback type, one log schema
================================  ==============================================================
"""

from __future__ import annotations

__all__ = [
    "ESTIMATORS",
    "BrenierSettings",
    "Callback",
    "FitSettings",
    "FittedMap",
    "MinibatchSettings",
    "PlanSettings",
    "default_smoothness",
    "fit_color_map",
]

from .colour import FitSettings, FittedMap, default_smoothness, fit_color_map
from .estimators import ESTIMATORS, BrenierSettings, MinibatchSettings, PlanSettings
from .trainers import Callback
