"""The world explorer (notebook 00): pick a topic → its news, true and observed crowd and replies with the
repliers' true personas; pick a user → history and true persona.

:func:`topic_view` and :func:`user_view` are the pure views (tests and plain Python call them);
:func:`world_explorer` is the widget around them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from socialalign_lib.plots import label_colors
from socialalign_lib.world import World

from .display import _html_list, _new_figure, _topic_options, _user_options, _widget, show_figure
from .headless import static_view


def topic_view(world: World, topic_id: str, n_replies: int = 6) -> dict[str, Any]:
    """A topic: news, category, its true and empirical crowd distributions, and a sample of real replies with
    their users' true personas."""
    topic = world.topic(topic_id)
    replies = [r for r in world.responses if r.topic_id == topic_id]
    return {
        "topic_id": topic_id,
        "hashtag": topic.hashtag,
        "category": topic.category,
        "news": topic.news,
        "labels": list(world.labels),
        "true_distribution": dict(zip(world.labels, world.true_crowd()[topic_id])),
        "empirical_distribution": dict(zip(world.labels, world.empirical_crowd()[topic_id])),
        "n_replies": len(replies),
        "replies": [
            {
                "user_id": r.post.user_id,
                "text": r.post.text,
                "sentiment": r.sentiment,
                "likes": r.post.likes,
                "persona": world.latent_users[r.post.user_id].true_persona(),
            }
            for r in replies[:n_replies]
        ],
    }


def user_view(world: World, user_id: str, n_history: int = 8) -> dict[str, Any]:
    """A user: history posts and the true persona attributes (what persona extraction should recover)."""
    user, latent = world.user(user_id), world.latent_users[user_id]
    return {
        "user_id": user_id,
        "screen_name": user.screen_name,
        "history": [p.full_text for p in user.history[:n_history]],
        "persona": latent.true_persona(),
        "latent": {
            "archetype": latent.archetype,
            "personality": latent.personality,
            "emotional_baseline": latent.emotional_baseline,
            "contrarian": latent.contrarian,
            "top_interests": latent.top_interests(3),
        },
        "replies": [
            {"topic_id": r.topic_id, "text": r.post.text, "sentiment": r.sentiment}
            for r in world.responses
            if r.post.user_id == user_id
        ],
    }


def distribution_bars(dists: dict[str, dict[str, float]], title: str, pyplot: bool = True) -> Figure:
    """Horizontal stacked bars, one per named distribution (e.g. true vs empirical vs predicted).
    ``pyplot=False``: a figure pyplot never sees (see :func:`_new_figure`)."""
    names = list(dists)
    labels = list(next(iter(dists.values())))
    fig = _new_figure(pyplot, figsize=(6, 0.5 * len(names) + 1.2))
    ax = fig.subplots()
    left = np.zeros(len(names))
    for lab, color in zip(labels, label_colors(labels)):
        vals = np.array([dists[n][lab] for n in names])
        ax.barh(names, vals, left=left, color=color, label=lab)
        left += vals
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of replies")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=7, ncols=len(labels))
    return fig


def world_explorer(
    world: World, figures_dir: str | Path | None = None, static_name: str = "00_world_explorer"
):
    """Pick a topic → news, true crowd, replies with personas; pick a user → history and true persona."""
    import ipywidgets as w
    from IPython.display import HTML, display

    def render_topic(tid: str) -> None:
        v = topic_view(world, tid)
        fig = distribution_bars(
            {"true p(s|topic)": v["true_distribution"], "observed": v["empirical_distribution"]},
            f"#{v['hashtag']}# [{v['category']}]",
            pyplot=False,
        )
        display(HTML(f"<p><b>{v['news']}</b></p>"))
        show_figure(fig)
        display(
            HTML(
                _html_list(
                    [
                        f"{r['sentiment']}: {r['text']} — {r['persona']['values']} / {r['persona']['personality']}"
                        for r in v["replies"]
                    ]
                )
            )
        )

    def render_user(uid: str) -> None:
        v = user_view(world, uid)
        display(
            HTML(
                f"<p><b>{v['screen_name']}</b> — "
                + "; ".join(f"{k}: {x}" for k, x in v["persona"].items())
                + "</p>"
            )
        )
        display(HTML(_html_list(v["history"])))

    first = world.topics[0].topic_id
    v = topic_view(world, first)
    fig = distribution_bars(
        {"true p(s|topic)": v["true_distribution"], "observed": v["empirical_distribution"]},
        f"World explorer (static view): #{v['hashtag']}#",
        pyplot=False,
    )
    static = static_view(fig, static_name, figures_dir)
    if static is not None:
        return static
    topics = _topic_options(world)
    users = _user_options(world)
    return w.Tab(
        children=[_widget(topics, render_topic, "topic"), _widget(users, render_user, "user")],
        titles=("topics", "users"),
    )
