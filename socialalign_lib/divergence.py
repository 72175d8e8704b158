"""Deprecated import path: use socialalign_lib.crowd.divergences (divergences, the one crowd bootstrap,
``compare_crowds``) and socialalign_lib.crowd.distributions (``distribution``, ``crowd_distributions``).

Kept so notebooks and scripts that import ``socialalign_lib.divergence`` keep working; it defines nothing.
"""

from __future__ import annotations

from .crowd.distributions import crowd_distributions, distribution
from .crowd.divergences import (
    OVERALL,
    bootstrap_ci,
    compare_crowds,
    divergences,
    js_divergence,
    kl_divergence,
    multinomial_replicates,
    total_variation,
)

_divergences = divergences  # the earlier private name

__all__ = [
    "OVERALL",
    "distribution",
    "kl_divergence",
    "js_divergence",
    "total_variation",
    "crowd_distributions",
    "bootstrap_ci",
    "multinomial_replicates",
    "divergences",
    "compare_crowds",
]
