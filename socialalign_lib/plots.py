"""Figures the notebooks show, made by functions so tests can call them and the CLI can reuse them."""

from __future__ import annotations

from pathlib import Path

import matplotlib

if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "nbagg", "widget", "ipympl"):
    matplotlib.use("Agg")  # headless by default; notebooks keep their inline backend
import matplotlib.pyplot as plt
import numpy as np

from .paths import FIGURES_DIR

DPI = 130
SENTIMENT_COLORS = {"negative": "#d62728", "neutral": "#bbbbbb", "positive": "#2ca02c"}



def _use_cjk_font() -> None:
    """Chinese glyphs in figures: register the Noto Sans CJK font shipped by ``mplfonts`` (no system fonts
    needed), prefer any system CJK font, and never fail when none is there."""
    try:
        import importlib.resources

        from matplotlib import font_manager

        font = importlib.resources.files("mplfonts") / "fonts" / "NotoSansCJKsc-Regular.otf"
        if font.is_file():
            font_manager.fontManager.addfont(str(font))
    except Exception:  # noqa: BLE001 - fonts are cosmetic
        pass
    plt.rcParams["font.sans-serif"] = ["Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei", "SimHei", "DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False


_use_cjk_font()


def label_colors(labels: tuple[str, ...] | list[str]) -> list[str]:
    if all(lab in SENTIMENT_COLORS for lab in labels):
        return [SENTIMENT_COLORS[lab] for lab in labels]
    return list(plt.get_cmap("RdYlGn")(np.linspace(0.1, 0.9, len(labels))))


def save_figure(fig: plt.Figure, name: str, figures_dir: str | Path | None = None) -> Path:
    """Save as PNG at a fixed DPI under ``figures/`` (created if missing) and return the path."""
    out_dir = Path(figures_dir) if figures_dir is not None else FIGURES_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / (name if name.endswith(".png") else f"{name}.png")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def stacked_distributions(dists: dict[str, list[float]], labels: tuple[str, ...], title: str,
                          order: list[str] | None = None, ax: plt.Axes | None = None,
                          xlabel: str = "topic", names: dict[str, str] | None = None) -> plt.Figure:
    """One stacked bar per key (topic), segments = label shares. Sorted by the first label's share by default.
    ``names``: display names for the keys (e.g. hashtag and category instead of a topic id)."""
    keys = order or sorted(dists, key=lambda k: -dists[k][0])
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6, 0.22 * len(keys) + 2), 3.6))
    else:
        fig = ax.figure
    data = np.array([dists[k] for k in keys])
    bottom = np.zeros(len(keys))
    for j, (lab, color) in enumerate(zip(labels, label_colors(labels))):
        ax.bar(range(len(keys)), data[:, j], bottom=bottom, color=color, label=lab, width=0.85)
        bottom += data[:, j]
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([(names or {}).get(k, k) for k in keys], rotation=90, fontsize=8 if len(keys) <= 40 else 7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of replies")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return fig


def score_vs_chance(table, title: str, xlabel: str = "score", ax: plt.Axes | None = None) -> plt.Figure:
    """Horizontal bars of ``table.score`` per ``table.metric`` with each metric's chance level as a black tick
    (e.g. ``persona.recovery_table``): how far above chance each recovered attribute is."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 0.42 * len(table) + 1.2))
    else:
        fig = ax.figure
    y = np.arange(len(table))[::-1]
    ax.barh(y, table["score"], color="#4c72b0", label="score")
    ax.scatter(table["chance"], y, marker="|", s=400, color="black", linewidths=2, label="chance", zorder=3)
    for yi, s in zip(y, table["score"]):
        ax.text(min(s + 0.01, 0.93), yi, f"{s:.2f}", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels(table["metric"])
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return fig
