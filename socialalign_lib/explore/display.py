"""Shared display pieces of the explorers: charts kept off pyplot, how a chart is shown inside a widget, the
dropdown + output widget and the small HTML helpers.

Every explorer draws on a bare ``matplotlib.figure.Figure`` and shows it with :func:`show_figure`; the reason
(JupyterLab runs widget callbacks on a kernel subshell thread) is written once, in :func:`_new_figure`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from socialalign_lib.plots import DPI
from socialalign_lib.world import World


def _user_options(world: World) -> list[tuple[str, str]]:
    """Dropdown (label, user_id) pairs, in the world's order."""
    return [(f"{u.user_id} {u.screen_name}", u.user_id) for u in world.users]


def _topic_options(world: World) -> list[tuple[str, str]]:
    """Dropdown (label, topic_id) pairs: id, hashtag and category."""
    return [(f"{t.topic_id} #{t.hashtag}# [{t.category}]", t.topic_id) for t in world.topics]


def _new_figure(pyplot: bool, **kwargs: Any) -> Figure:
    """A figure for a view: registered with pyplot (``plt.figure``, what a notebook cell shows by itself), or a
    bare ``Figure`` that pyplot never sees (``pyplot=False``, what the explorers use).

    Why the explorers keep off pyplot: JupyterLab 4.6 sends widget messages to a kernel *subshell* thread
    (ipykernel 7). While a dropdown callback draws its chart on one thread, the inline backend may "draw and
    close every open pyplot figure" on the other, and both draw the same figure at once: the first change after
    the explorer cell ran showed a blank chart or bars without text (jupyterlab#19719, ipykernel#1564). A figure
    that is not in pyplot's list is invisible to that flush; it is freed when the last reference goes.
    """
    return plt.figure(**kwargs) if pyplot else Figure(**kwargs)


_FIGURE_MIMETYPES = ("image/png", "image/svg+xml", "image/jpeg", "application/pdf")


def show_figure(fig: Figure) -> None:
    """Display ``fig`` in the current output (inside a callback: the widget's ``Output``), without pyplot.

    ``plt.show(fig)`` would display and close *every* open pyplot figure, and it needs the figure in pyplot's
    list (see :func:`_new_figure`). ``display(fig)`` goes through IPython's formatter for figures, which the
    inline backend registers (honouring ``%config InlineBackend.figure_formats``). Under a backend that
    registers none (``%matplotlib widget``/ipympl) the figure is shown as a PNG instead of its text repr.
    """
    from IPython import get_ipython
    from IPython.display import Image, display

    shell = get_ipython()
    if shell is not None and not any(_has_formatter(shell, m, fig) for m in _FIGURE_MIMETYPES):
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
        display(Image(data=buf.getvalue(), format="png"))
        return
    display(fig)


def _has_formatter(shell: Any, mimetype: str, obj: Any) -> bool:
    formatter = shell.display_formatter.formatters.get(mimetype)
    if formatter is None or not formatter.enabled:
        return False
    try:
        formatter.lookup(obj)
    except KeyError:
        return False
    return True


def _html_list(items: list[str]) -> str:
    import html

    return "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in items) + "</ul>"


def _widget(options: list[tuple[str, str]], render: Callable[[str], None], description: str):
    """A dropdown + output area; ``render(value)`` draws into the output. Returns the widget box."""
    import ipywidgets as w

    dropdown = w.Dropdown(options=options, description=description, layout=w.Layout(width="60%"))
    out = w.Output()

    def on_change(change: dict) -> None:
        out.clear_output(wait=True)
        with out:
            render(change["new"])

    dropdown.observe(on_change, names="value")
    with out:
        render(dropdown.value)
    return w.VBox([dropdown, out])


def highlight_spans(
    text: str, spans: dict[str, tuple[int, int] | list[int]], colors: dict[str, str] | None = None
) -> str:
    """HTML of ``text`` with each named ``[start, end)`` character span marked (e.g. a record's ``user_span``
    and ``news_span``), so a reader sees exactly what the recorded offsets cover. Spans must not overlap."""
    import html

    palette = colors or {}
    default = ["#cfe8ff", "#ffe3a3", "#d9f2d0", "#f6d0e6"]
    order = sorted(spans.items(), key=lambda kv: kv[1][0])
    out, pos = [], 0
    for i, (name, (s, e)) in enumerate(order):
        if not 0 <= pos <= s < e <= len(text):
            raise ValueError(
                f"span {name}={[s, e]} overlaps another span or lies outside the text (len {len(text)})"
            )
        color = palette.get(name, default[i % len(default)])
        out.append(html.escape(text[pos:s]))
        out.append(
            f'<mark title="{html.escape(name)}" style="background:{color}">{html.escape(text[s:e])}</mark>'
        )
        pos = e
    out.append(html.escape(text[pos:]))
    legend = " ".join(
        f'<mark style="background:{palette.get(n, default[i % len(default)])}">{html.escape(n)}</mark>'
        for i, (n, _) in enumerate(order)
    )
    return f'<div style="white-space:pre-wrap;font-size:90%">{legend}\n\n{"".join(out)}</div>'
