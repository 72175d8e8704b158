"""Interactive explorers (ipywidgets) for teaching and exploratory analysis.

Each explorer is a *pure view function* (selection → a dict of what to show) plus a thin widget that calls it.
Tests and plain Python call the view functions directly; notebooks call ``*_explorer(...)`` in one line. When the
notebook runs headless (papermill / CI) the widget is still built, the view for the default selection is rendered
as a static figure saved to ``figures/``, and nothing ever waits for input.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from .plots import label_colors, save_figure
from .world import World


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
            {"user_id": r.post.user_id, "text": r.post.text, "sentiment": r.sentiment, "likes": r.post.likes,
             "persona": world.latent_users[r.post.user_id].true_persona()}
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
        "latent": {"archetype": latent.archetype, "personality": latent.personality,
                   "emotional_baseline": latent.emotional_baseline, "contrarian": latent.contrarian,
                   "top_interests": latent.top_interests(3)},
        "replies": [{"topic_id": r.topic_id, "text": r.post.text, "sentiment": r.sentiment}
                    for r in world.responses if r.post.user_id == user_id],
    }


def distribution_bars(dists: dict[str, dict[str, float]], title: str) -> plt.Figure:
    """Horizontal stacked bars, one per named distribution (e.g. true vs empirical vs predicted)."""
    names = list(dists)
    labels = list(next(iter(dists.values())))
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(names) + 1.2))
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


def world_explorer(world: World, figures_dir: str | Path | None = None, static_name: str = "00_world_explorer"):
    """Pick a topic → news, true crowd, replies with personas; pick a user → history and true persona."""
    import ipywidgets as w
    from IPython.display import HTML, display

    def render_topic(tid: str) -> None:
        v = topic_view(world, tid)
        fig = distribution_bars({"true p(s|topic)": v["true_distribution"], "observed": v["empirical_distribution"]},
                                f"#{v['hashtag']}# [{v['category']}]")
        display(HTML(f"<p><b>{v['news']}</b></p>"))
        plt.show(fig) if plt.isinteractive() else display(fig)
        plt.close(fig)
        display(HTML(_html_list([f"{r['sentiment']}: {r['text']} — {r['persona']['values']} / {r['persona']['personality']}"
                                  for r in v["replies"]])))

    def render_user(uid: str) -> None:
        v = user_view(world, uid)
        display(HTML(f"<p><b>{v['screen_name']}</b> — " + "; ".join(f"{k}: {x}" for k, x in v["persona"].items()) + "</p>"))
        display(HTML(_html_list(v["history"])))

    first = world.topics[0].topic_id
    v = topic_view(world, first)
    fig = distribution_bars({"true p(s|topic)": v["true_distribution"], "observed": v["empirical_distribution"]},
                            f"World explorer (static view): #{v['hashtag']}#")
    save_figure(fig, static_name, figures_dir)
    plt.close(fig)
    topics = [(f"{t.topic_id} #{t.hashtag}# [{t.category}]", t.topic_id) for t in world.topics]
    users = [(f"{u.user_id} {u.screen_name}", u.user_id) for u in world.users]
    return w.Tab(children=[_widget(topics, render_topic, "topic"), _widget(users, render_user, "user")],
                 titles=("topics", "users"))
