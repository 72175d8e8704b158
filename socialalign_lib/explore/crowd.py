"""The crowd explorer (notebook 05): pick a topic → the real and the generated crowd side by side (and the true
crowd on the embedded world), JS / KL / TV with bootstrap CIs, and the replies behind each bar segment.

:func:`crowd_view` is the pure view, :func:`crowd_view_figure` its static form, :func:`crowd_explorer` the widget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from socialalign_lib.plots import figure_text, label_colors
from socialalign_lib.world import World

from .display import _html_list, _new_figure, _widget, show_figure
from .headless import static_view


def crowd_view(
    labelled: Any,
    topic_id: str,
    comparison: Any | None = None,
    world: World | None = None,
    labels: tuple[str, ...] | list[str] | None = None,
    n_replies: int = 4,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """One topic's crowd, real vs generated: both distributions, JS / KL / TV with bootstrap CIs, and the replies
    behind each bar segment.

    ``labelled`` is a replies frame after ``macro.label_replies`` (columns ``topic_id, user_id, reference,
    generated`` and the labeller's ``real_sentiment`` / ``pred_sentiment``). ``comparison`` is the
    ``divergence.compare_crowds`` result of those crowds (all topics); without it, the numbers are computed for
    this topic alone (same definitions, ``n_boot``, ``seed``). ``world`` (the embedded world) adds the news text
    and the true expected crowd of the same users.

    ``replies`` maps ``"real"`` / ``"generated"`` → label → up to ``n_replies`` ``{user_id, text}`` (in frame
    order); ``counts`` gives how many replies each segment has.
    """
    from socialalign_lib.crowd.baselines import true_crowd
    from socialalign_lib.crowd.distributions import PRED_COL, REAL_COL, crowd_frames
    from socialalign_lib.crowd.divergences import compare_crowds
    from socialalign_lib.data.schema import SENTIMENTS

    rows = labelled[labelled["topic_id"] == topic_id]
    if rows.empty:
        raise KeyError(f"no replies for topic {topic_id!r}")
    if labels is None:
        labels = world.labels if world is not None else SENTIMENTS
    labels = list(labels)
    if comparison is not None and topic_id in comparison.index:
        c = comparison.loc[topic_id]
    else:
        real_df, pred_df = crowd_frames(rows)
        c = compare_crowds(real_df, pred_df, labels, n_boot=n_boot, seed=seed).loc[topic_id]
    view: dict[str, Any] = {
        "topic_id": topic_id,
        "labels": labels,
        "category": str(rows["category"].iloc[0]) if "category" in rows else None,
        "hashtag": None,
        "news": None,
        "real_distribution": {lab: float(c[f"real_{lab}"]) for lab in labels},
        "pred_distribution": {lab: float(c[f"pred_{lab}"]) for lab in labels},
        "true_distribution": None,
        "n_real": int(c["n_real"]),
        "n_pred": int(c["n_pred"]),
    }
    for name in ("js", "kl", "tv"):
        view[name] = float(c[name])
        view[f"{name}_ci"] = (
            (float(c[f"{name}_low"]), float(c[f"{name}_high"])) if f"{name}_low" in c else None
        )
    if world is not None:
        topic = world.topic(topic_id)
        view.update(hashtag=topic.hashtag, news=topic.news, category=topic.category)
        truth = true_crowd(world, rows).loc[topic_id]
        view["true_distribution"] = {lab: float(truth[lab]) for lab in labels}
    replies: dict[str, dict[str, list[dict[str, str]]]] = {"real": {}, "generated": {}}
    counts: dict[str, dict[str, int]] = {"real": {}, "generated": {}}
    for side, text_col, label_col in (("real", "reference", REAL_COL), ("generated", "generated", PRED_COL)):
        for lab in labels:
            seg = rows[rows[label_col] == lab]
            counts[side][lab] = len(seg)
            replies[side][lab] = [
                {"user_id": str(u), "text": str(t)}
                for u, t in zip(seg["user_id"].head(n_replies), seg[text_col].head(n_replies))
            ]
    view["replies"], view["counts"] = replies, counts
    return view


def _ci_text(view: dict[str, Any], name: str) -> str:
    ci = view[f"{name}_ci"]
    return f"{name.upper()} {view[name]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def crowd_view_figure(
    view: dict[str, Any], method: str = "generated", max_chars: int = 34, pyplot: bool = True
) -> Figure:
    """The static form of :func:`crowd_view`: stacked bars (real, generated, and the truth when known) with the
    divergences in the title, and one example reply per bar segment underneath (emoji as ``[名称]`` codes,
    :func:`~socialalign_lib.plots.figure_text`). ``pyplot=False``: see :func:`_new_figure`."""
    dists = {
        f"real ({view['n_real']})": view["real_distribution"],
        f"{method} ({view['n_pred']})": view["pred_distribution"],
    }
    if view["true_distribution"] is not None:
        dists["true crowd"] = view["true_distribution"]
    names, labels = list(dists), view["labels"]
    fig = _new_figure(pyplot, figsize=(8.5, 4.0))
    ax, ax_txt = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1, 0.5]})
    left = np.zeros(len(names))
    for lab, color in zip(labels, label_colors(labels)):
        vals = np.array([dists[n][lab] for n in names])
        ax.barh(names, vals, left=left, color=color, label=lab)
        left += vals
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of replies")
    ax.legend(loc="lower right", fontsize=7, ncols=len(labels))
    head = f"#{view['hashtag']}# " if view["hashtag"] else ""
    ax.set_title(
        f"{view['topic_id']} {head}[{view['category']}]\n"
        f"{_ci_text(view, 'js')} · {_ci_text(view, 'kl')} · {_ci_text(view, 'tv')}",
        fontsize=9,
    )
    ax_txt.axis("off")
    lines = []
    for side in ("real", "generated"):
        for lab in labels:
            ex = view["replies"][side][lab]
            text = figure_text(ex[0]["text"]).replace("\n", " ") if ex else "—"
            text = text[:max_chars] + ("…" if len(text) > max_chars else "")
            lines.append(
                f"{'real' if side == 'real' else method:>10} · {lab:<8} ({view['counts'][side][lab]:>2}): {text}"
            )
    ax_txt.text(
        0.0,
        1.0,
        "\n".join(lines),
        va="top",
        ha="left",
        fontsize=8,
        family="sans-serif",
        transform=ax_txt.transAxes,
    )
    fig.tight_layout()
    return fig


def crowd_explorer(
    labelled: Any,
    comparison: Any | None = None,
    world: World | None = None,
    figures_dir: str | Path | None = None,
    method: str = "generated",
    static_name: str = "05_crowd_explorer",
    topic_id: str | None = None,
):
    """Pick a topic → real vs generated crowd (stacked bars, with the truth when ``world`` is given), JS / KL / TV
    with CIs, and the replies behind each bar. Headless runs save the view of ``topic_id`` (default: the first
    topic) as ``figures/05_crowd_explorer.png``; the widget never waits for input."""
    import html

    from IPython.display import HTML, display

    topics = sorted(set(labelled["topic_id"]))
    first = topic_id or topics[0]
    fig = crowd_view_figure(crowd_view(labelled, first, comparison, world), method, pyplot=False)
    static = static_view(fig, static_name, figures_dir)
    if static is not None:
        return static

    def render(tid: str) -> None:
        v = crowd_view(labelled, tid, comparison, world)
        if v["news"]:
            display(HTML(f"<p><b>#{html.escape(v['hashtag'])}#</b> {html.escape(v['news'])}</p>"))
        show_figure(crowd_view_figure(v, method, pyplot=False))
        for side in ("real", "generated"):
            items = [
                f"{lab} ({v['counts'][side][lab]}): {r['text']}"
                for lab in v["labels"]
                for r in v["replies"][side][lab]
            ]
            display(HTML(f"<p><b>{side if side == 'real' else method}</b></p>" + _html_list(items)))

    def label(tid: str) -> str:
        return f"{tid} #{world.topic(tid).hashtag}#" if world is not None else tid

    return _widget([(label(t), t) for t in topics], render, "topic")
