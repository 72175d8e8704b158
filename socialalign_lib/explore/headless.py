"""What every explorer does when no widget front end will ever answer: show the saved static view.

Each explorer renders its default selection as a figure and saves it to ``figures/`` (the README and the executed
notebooks show that picture). Under a headless runner — ``course.execute_notebook`` (``make course``, the notebook
tests) sets ``SOCIALALIGN_HEADLESS=1`` — the explorer returns that saved image and builds no widget at all, because
nbclient can block on widget comm messages (jupyter/nbclient#312; seen here in about one run in five). This module
is that one fallback, shared by all explorers, so the rule is written once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from socialalign_lib.plots import save_figure

HEADLESS_ENV = "SOCIALALIGN_HEADLESS"


def headless() -> bool:
    """True when a runner without a widget front-end executes the notebook (set by ``course.execute_notebook``)."""
    return os.environ.get(HEADLESS_ENV) == "1"


def _static(path: Path):
    """What a headless explorer returns: the saved static view, displayed as the cell's result."""
    from IPython.display import Image

    return Image(filename=str(path))


def static_view(fig: Figure, static_name: str, figures_dir: str | Path | None) -> Any | None:
    """Save ``fig`` (an explorer's default selection) as ``figures/<static_name>.png``; return the image a headless
    explorer shows instead of its widgets, or None when a front end is there and the widgets should be built."""
    path = save_figure(fig, static_name, figures_dir)
    return _static(path) if headless() else None
