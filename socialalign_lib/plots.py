"""Figures the notebooks show, made by functions so tests can call them and the CLI can reuse them."""

from __future__ import annotations

import re
import unicodedata
import warnings
from functools import lru_cache
from pathlib import Path

import matplotlib

if matplotlib.get_backend().lower() not in (
    "module://matplotlib_inline.backend_inline",
    "nbagg",
    "widget",
    "ipympl",
):
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
    plt.rcParams["font.sans-serif"] = [
        "Noto Sans CJK SC",
        "Noto Sans CJK JP",
        "WenQuanYi Zen Hei",
        "SimHei",
        "DejaVu Sans",
    ]
    plt.rcParams["axes.unicode_minus"] = False


_use_cjk_font()


def label_colors(labels: tuple[str, ...] | list[str]) -> list[str]:
    if all(lab in SENTIMENT_COLORS for lab in labels):
        return [SENTIMENT_COLORS[lab] for lab in labels]
    return list(plt.get_cmap("RdYlGn")(np.linspace(0.1, 0.9, len(labels))))


# ------------------------------------------------------------------------------------------ glyph-safe text

EMOJI_CODES: dict[str, str] = {
    "👍": "[赞]",
    "🎉": "[庆祝]",
    "❤": "[心]",
    "😄": "[哈哈]",
    "😡": "[怒]",
    "😭": "[泪]",
    "🙄": "[白眼]",
    "💢": "[怒骂]",
    "🤔": "[思考]",
    "👀": "[围观]",
    "😶": "[闭嘴]",
    "🍉": "[吃瓜]",
}
"""Unicode emoji → the Weibo-style ``[名称]`` emoticon code a figure shows instead (the world's pictographs,
``world.lexicon.EMOJI``, and ❤ without its variation selector). Why: the CJK font has no emoji, and a colour
emoji font is no dependency of the course; Weibo itself writes emoticons as ``[名称]`` codes."""

GENERIC_EMOJI_CODE = "[表情]"
"""What any other pictographic emoji becomes in a figure."""

# A pictograph (emoji blocks, or the symbol blocks when an emoji modifier follows) with its modifiers: skin
# tones, variation selectors, keycap, and ZWJ-joined further pictographs ("👨‍👩‍👧" is one emoji).
_PICTO = "\U0001f000-\U0001faff"
_SYMBOL = "\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff"
_GLUE = "\U0001f3fb-\U0001f3ff\ufe0e\ufe0f\u20e3"
_EMOJI_SEQ = re.compile(f"([{_PICTO}{_SYMBOL}])(?:[{_GLUE}]|\u200d[{_PICTO}{_SYMBOL}])*")
_STRAY = re.compile(f"[{_GLUE}\u200d\U000e0020-\U000e007f\ufffd]")


def figure_text(text: str) -> str:
    """``text`` as a figure can draw it: emoji become their Weibo code (:data:`EMOJI_CODES`, else
    :data:`GENERIC_EMOJI_CODE`), emoji glue (variation selectors, ZWJ, skin tones) and U+FFFD replacement
    characters (a broken byte sequence, never text) are dropped. Symbols the font has (★, ✓) stay."""

    def code(m: re.Match) -> str:
        base = m.group(1)
        if base in EMOJI_CODES:
            return EMOJI_CODES[base]
        if "\U0001f000" <= base <= "\U0001faff" or m.group(0) != base:
            return GENERIC_EMOJI_CODE
        return base

    return _STRAY.sub("", _EMOJI_SEQ.sub(code, str(text)))


class MissingGlyphError(RuntimeError):
    """A figure's text has characters that none of its fonts can draw (they would show as empty boxes)."""


@lru_cache(maxsize=64)
def _charmap(font_path) -> frozenset[int]:
    """The code points a font file has glyphs for (``font_path``: what matplotlib's font lookup returns)."""
    from matplotlib import font_manager

    return frozenset(font_manager.get_font(font_path).get_charmap())


def _font_paths(prop) -> list:
    """The font files matplotlib draws ``prop`` with, in fallback order (its own lookup: a generic family such as
    "sans-serif" resolves to the first installed font of ``rcParams["font.sans-serif"]``, with no fallback)."""
    from matplotlib import font_manager

    try:
        return list(font_manager.fontManager._find_fonts_by_props(prop))
    except AttributeError:  # matplotlib < 3.6: one font per text
        return [font_manager.findfont(prop)]


def _drawn_text(text: str) -> str:
    """The characters of a text artist's string that the plain-text renderer draws: mathtext (``$…$``) spans are
    left out (mathtext has its own fonts), and so is whitespace."""
    from matplotlib import cbook

    if cbook.is_math_text(text):
        text = re.sub(r"(?<!\\)\$.*?(?<!\\)\$", "", text).replace("\\$", "$")
    return "".join(ch for ch in text if not ch.isspace() and unicodedata.category(ch) != "Cc")


def missing_glyphs(fig: plt.Figure) -> dict[str, list[str]]:
    """``{text: [missing characters]}`` for every visible text of ``fig`` (titles, labels, tick labels, legends,
    table cells, annotations) with characters that no font matplotlib would use for it contains. Draws the
    figure first (``draw_without_rendering``: also for a bare ``Figure``, whose canvas draws nothing), so that
    tick labels exist."""
    from matplotlib.table import Table
    from matplotlib.text import Text

    fig.draw_without_rendering()
    texts = fig.findobj(Text)
    for table in fig.findobj(Table):  # a table cell's text is not among the cell's children
        texts += [cell.get_text() for cell in table.get_celld().values()]
    out: dict[str, list[str]] = {}
    for artist in texts:
        if not artist.get_visible() or artist.get_usetex():
            continue
        chars = _drawn_text(artist.get_text())
        if not chars:
            continue
        maps = [_charmap(f) for f in _font_paths(artist.get_fontproperties())]
        lost = sorted({ch for ch in chars if not any(ord(ch) in m for m in maps)})
        if lost:
            out[artist.get_text()] = lost
    return out


def _char_names(chars: set[str] | list[str]) -> str:
    return ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, '?')}" for c in sorted(chars))


def _raise_missing(name: str, missing: dict[str, list[str]], caught: list[warnings.WarningMessage]) -> None:
    """Raise for the characters in ``missing`` or in matplotlib's "Glyph … missing from font" warnings among
    ``caught``; re-emit every other caught warning."""
    lost: set[str] = {ch for chars in missing.values() for ch in chars}
    for w in caught:
        m = re.match(r"Glyph (\d+) .*missing from font", str(w.message))
        if m:
            lost.add(chr(int(m.group(1))))
        else:  # not ours: let it through
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if lost:
        texts = [t for t, chars in missing.items() if set(chars) & lost] or [
            "(seen in matplotlib's warnings)"
        ]
        shown = "; ".join(repr(t[:60]) for t in texts[:5]) + (
            f" and {len(texts) - 5} more" if len(texts) > 5 else ""
        )
        raise MissingGlyphError(
            f"figure {name!r}: no font has {_char_names(lost)} (they would be drawn as empty boxes) in {shown}. "
            "Pass data text through plots.figure_text (emoji → [名称] codes, U+FFFD dropped)."
        )


def check_glyphs(fig: plt.Figure, name: str) -> None:
    """Raise :class:`MissingGlyphError` naming the figure, the missing characters and the texts that hold them
    when any text of ``fig`` would be drawn with empty boxes. Two checks: matplotlib's own "Glyph … missing from
    font" warnings while drawing (caught here, not printed), and the characters of every text against the
    charmaps of its fonts (matplotlib warns only the first time a font meets a character, so a figure drawn
    before — ``tight_layout``, a notebook display — would pass the warning check alone)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        missing = missing_glyphs(fig)
    _raise_missing(name, missing, caught)


def save_figure(fig: plt.Figure, name: str, figures_dir: str | Path | None = None) -> Path:
    """Save as PNG at a fixed DPI under ``figures/`` (created if missing) and return the path.

    Fails loudly (:class:`MissingGlyphError`, nothing written) when a text of the figure has characters no font
    can draw (:func:`check_glyphs`; the PNG is rendered in memory under the same watch, and written only when
    clean): every figure the course writes goes through here, so none shows empty boxes."""
    import io

    out_dir = Path(figures_dir) if figures_dir is not None else FIGURES_DIR
    path = out_dir / (name if name.endswith(".png") else f"{name}.png")
    buf = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        missing = missing_glyphs(fig)
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    _raise_missing(path.name, missing, caught)
    from socialalign_lib.data.write import _atomic_write

    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda f: f.write(buf.getvalue()), fsync=False)
    return path


def stacked_distributions(
    dists: dict[str, list[float]],
    labels: tuple[str, ...],
    title: str,
    order: list[str] | None = None,
    ax: plt.Axes | None = None,
    xlabel: str = "topic",
    names: dict[str, str] | None = None,
) -> plt.Figure:
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
    ax.set_xticklabels([figure_text((names or {}).get(k, k)) for k in keys], rotation=90, fontsize=8)
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


def split_overview(
    records, labels: tuple[str, ...] | list[str], order: list[str] | None = None, n_variants: int = 1
) -> plt.Figure:
    """What each dataset split holds: replies (one case each), its users and topics split into those seen in
    ``train`` and those new to it (the point of test_user / test_topic / test_both), and the reply sentiment.

    ``records``: one row per case (the ``full`` variant only) with ``split, user_id, topic_id, sentiment``, e.g.
    ``pd.concat(data.split(s).to_pandas() for s in data.dataset)``. ``n_variants``: how many prompt variants each
    case is rendered into (said in the title: records = cases × variants, equal for every variant by
    construction, so they are not drawn)."""
    import pandas as pd

    order = order or list(dict.fromkeys(records["split"]))
    train = records[records["split"] == "train"]
    seen = {"users": set(train["user_id"]), "topics": set(train["topic_id"])}
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6), gridspec_kw={"width_ratios": [1, 1.3, 1.1]})
    x = np.arange(len(order))
    cases = [int((records["split"] == s).sum()) for s in order]
    axes[0].bar(x, cases, color="#4c72b0")
    for xi, n in zip(x, cases):
        axes[0].text(xi, n, str(n), ha="center", va="bottom", fontsize=8)
    axes[0].set(
        ylabel="replies (cases)",
        title="Replies per split"
        + (f"\n(records: each × {n_variants} prompt variants)" if n_variants > 1 else ""),
    )
    width = 0.38
    for k, (what, col) in enumerate((("users", "user_id"), ("topics", "topic_id"))):
        ids = [set(records.loc[records["split"] == s, col]) for s in order]
        old = np.array([len(i & seen[what]) for i in ids])
        new = np.array([len(i - seen[what]) for i in ids])
        xs = x + (k - 0.5) * width
        color = "#55a868" if what == "users" else "#c44e52"
        axes[1].bar(xs, old, width, color=color, label=f"{what} seen in train")
        axes[1].bar(
            xs,
            new,
            width,
            bottom=old,
            color="white",
            edgecolor=color,
            hatch="///",
            label=f"{what} new to train",
        )
        for xi, o, n in zip(xs, old, new):
            axes[1].text(xi, o + n, str(o + n), ha="center", va="bottom", fontsize=7)
    axes[1].set(ylabel="distinct users / topics", title="Users and topics per split")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for ax in axes[:2]:
        ax.set_ylim(0, ax.get_ylim()[1] * 1.1)  # room for the counts on the bars
    share = pd.crosstab(records["split"], records["sentiment"], normalize="index").reindex(order).fillna(0.0)
    bottom = np.zeros(len(order))
    for lab, color in zip(labels, label_colors(tuple(labels))):
        vals = share[lab].to_numpy(float) if lab in share else np.zeros(len(order))
        axes[2].bar(x, vals, bottom=bottom, color=color, label=lab)
        bottom += vals
    axes[2].set(ylabel="share of replies", title="Reply sentiment per split", ylim=(0, 1))
    axes[2].legend(loc="upper left", bbox_to_anchor=(1, 1), fontsize=8)
    for ax in axes:
        ax.set_xticks(x, order, fontsize=8)
    fig.tight_layout()
    return fig
