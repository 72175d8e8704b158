"""Interactive explorers (ipywidgets) for teaching and exploratory analysis.

Each explorer is a *pure view function* (selection → a dict of what to show) plus a thin widget that calls it.
Tests and plain Python call the view functions directly; notebooks call ``*_explorer(...)`` in one line. When the
notebook runs headless the view for the default selection is rendered as a static figure saved to ``figures/``
and nothing ever waits for input (:mod:`.headless`, the one fallback all explorers share).

One module per explorer: :mod:`.world` (notebook 00), :mod:`.persona` (02), :mod:`.generation` (04),
:mod:`.crowd` (05); :mod:`.display` holds what they share (charts off pyplot, the dropdown widget, HTML helpers).
Every name is re-exported here, so ``socialalign_lib.explore.X`` keeps working.
"""

from __future__ import annotations

from .crowd import crowd_explorer, crowd_view, crowd_view_figure

# _new_figure: the old module's private name, which tests/test_browser.py cites for the off-pyplot rule
from .display import _new_figure as _new_figure
from .display import highlight_spans, show_figure
from .generation import generation_explorer, generation_record, generation_view, generation_view_figure
from .headless import HEADLESS_ENV, headless, static_view
from .persona import PERSONA_ATTRIBUTES, persona_explorer, persona_view, persona_view_figure, true_attributes
from .world import distribution_bars, topic_view, user_view, world_explorer

__all__ = [
    "HEADLESS_ENV",
    "PERSONA_ATTRIBUTES",
    "crowd_explorer",
    "crowd_view",
    "crowd_view_figure",
    "distribution_bars",
    "generation_explorer",
    "generation_record",
    "generation_view",
    "generation_view_figure",
    "headless",
    "highlight_spans",
    "persona_explorer",
    "persona_view",
    "persona_view_figure",
    "show_figure",
    "static_view",
    "topic_view",
    "true_attributes",
    "user_view",
    "world_explorer",
]
