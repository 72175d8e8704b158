"""Deprecated import path: the crowd-level evaluation now lives in socialalign_lib.crowd, one module per step:
use socialalign_lib.crowd.distributions (labelling, crowd frames), socialalign_lib.crowd.divergences (per-topic and
mean divergences with the one bootstrap), socialalign_lib.crowd.baselines (category prior, oracle, truth),
socialalign_lib.crowd.comparisons (``js_difference``) and socialalign_lib.crowd.plots (figures).

Kept so notebooks and scripts that import ``socialalign_lib.macro`` keep working; it defines nothing.
"""

from __future__ import annotations

from .crowd.baselines import category_prior, oracle_crowd, true_crowd
from .crowd.comparisons import describe_js_difference, js_difference
from .crowd.distributions import PRED_COL, REAL_COL, crowd_counts, crowd_frames, label_replies
from .crowd.divergences import (
    DIVERGENCES,
    compare_to_truth,
    divergences,
    mean_divergences,
    multinomial_replicates,
)
from .crowd.plots import (
    plot_crowd_bars,
    plot_share_scatter,
    plot_topic_divergence,
    split_comparison,
    topic_names,
)

_replicates = multinomial_replicates  # the earlier private names
_all_divergences = divergences

__all__ = [
    "DIVERGENCES",
    "PRED_COL",
    "REAL_COL",
    "category_prior",
    "compare_to_truth",
    "crowd_counts",
    "crowd_frames",
    "describe_js_difference",
    "js_difference",
    "label_replies",
    "mean_divergences",
    "oracle_crowd",
    "plot_crowd_bars",
    "plot_share_scatter",
    "plot_topic_divergence",
    "split_comparison",
    "topic_names",
    "true_crowd",
]
