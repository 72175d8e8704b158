"""The persona explorer (notebook 02): pick a user (and a news) → each persona backend's persona beside the
user's latent truth, scored per attribute, and the history posts retrieval hands the model for that news.

:func:`persona_view` is the pure view (the same decoding and scoring rules as the notebook's recovery table, for one
user); :func:`persona_view_figure` its static form; :func:`persona_explorer` the widget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from socialalign_lib.plots import figure_text
from socialalign_lib.world import World

from .display import _html_list, _new_figure, _topic_options, _user_options, show_figure
from .headless import static_view

PERSONA_ATTRIBUTES: dict[str, str] = {
    "interests": "interests_overlap@3",
    "emotional_baseline": "emotional_tone_acc",
    "length_class": "length_acc",
    "emoji": "emoji_acc",
    "catch_phrase": "catch_phrase_acc",
    "personality": "personality_acc",
    "archetype": "values_acc",
}
"""The latent attributes a persona is scored on (``persona.decode_persona``'s keys) → the per-user metric of
``persona.persona_recovery`` that scores it (1 = recovered; interests: overlap of the top 3 / 3)."""


def true_attributes(world: World, user_id: str) -> dict[str, Any]:
    """A user's latent truth in ``decode_persona``'s vocabulary (catch-phrases: the list of the user's own)."""
    lu = world.latent_users[user_id]
    return {
        "interests": lu.top_interests(3),
        "emotional_baseline": lu.emotional_baseline,
        "length_class": lu.length_class,
        "emoji": lu.emoji_rate >= 0.5,
        "catch_phrase": list(lu.catch_phrases),
        "personality": lu.personality,
        "archetype": lu.archetype,
    }


def _persona_of(source: Any, user: Any) -> tuple[Any, str | None]:
    """``(Persona | None, error | None)`` from a mapping user_id → Persona/PersonaRecord or a callable(user)."""
    from socialalign_lib.build.persona.extractor import PersonaRecord
    from socialalign_lib.data.persona_text import PersonaError

    try:
        value = source(user) if callable(source) else source.get(user.user_id)
    except PersonaError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if isinstance(value, PersonaRecord):
        return value.persona, value.error
    return value, None if value is not None else "no persona for this user"


def _replied_topics(world: World, user_id: str) -> list[str]:
    return [r.topic_id for r in world.responses if r.post.user_id == user_id]


def persona_view(
    data: Any,
    user_id: str,
    topic_id: str | None = None,
    backends: dict[str, Any] | None = None,
    retrieval: Any | None = None,
) -> dict[str, Any]:
    """One user: the persona of each backend beside the latent truth, and the history posts retrieved for a news.

    ``data`` is a :class:`~socialalign_lib.pipeline.CourseData`. ``backends`` maps a name to either a mapping
    ``user_id → Persona | PersonaRecord`` (e.g. ``data.personas``, the default ``{"statistical": ...}``) or a
    callable ``user → Persona | PersonaRecord | None`` (e.g. a cached LLM extractor). Each backend's persona is
    decoded back to the latent vocabulary (``decode_persona``) and scored per attribute with
    ``persona_recovery`` — the same rules as the notebook's recovery table, for this one user.

    ``topic_id`` None: the first topic the user replied to. Retrieval uses ``data.config.retrieval`` (or
    ``retrieval``) over the history minus the user's reply to that topic, exactly as the dataset's records do, so
    ``retrieved`` lists the posts of the record's history block, best first, with their BM25 scores.
    """
    from socialalign_lib.build.persona.recovery import decode_persona, persona_recovery
    from socialalign_lib.build.retrieval import retrieve_history

    world = data.world
    user = world.user(user_id)  # KeyError for an unknown user
    replied = _replied_topics(world, user_id)
    topic_id = topic_id or (replied[0] if replied else world.topics[0].topic_id)
    topic = world.topic(topic_id)
    reply = next(
        (r.post for r in world.responses if r.topic_id == topic_id and r.post.user_id == user_id), None
    )
    truth = (
        {"persona": world.latent_users[user_id].true_persona(), "attributes": true_attributes(world, user_id)}
        if user_id in world.latent_users
        else None
    )
    views = {}
    for name, source in (backends if backends is not None else {"statistical": data.personas}).items():
        persona, error = _persona_of(source, user)
        entry: dict[str, Any] = {
            "persona": persona.to_dict() if persona else None,
            "error": error,
            "decoded": None,
            "scores": None,
        }
        if persona is not None:
            entry["decoded"] = decode_persona(persona)
            if truth is not None:
                report = persona_recovery({user_id: persona}, world)
                entry["scores"] = {a: report[m] for a, m in PERSONA_ATTRIBUTES.items()}
        views[name] = entry
    cfg = retrieval or data.config.retrieval
    history = [p for p in user.history if reply is None or p.post_id != reply.post_id]
    hits = retrieve_history(history, topic.news, cfg)
    return {
        "user_id": user_id,
        "screen_name": user.screen_name,
        "n_history": len(user.history),
        "truth": truth,
        "backends": views,
        "topic_id": topic_id,
        "hashtag": topic.hashtag,
        "news": topic.news,
        "replied_topics": replied,
        "reply": reply.text if reply is not None else None,
        "retrieval": {"method": cfg.method, "k": cfg.k, "tokenizer": cfg.tokenizer},
        "retrieved": [
            {"post_id": p.post_id, "text": p.full_text, "score": s, "created_at": p.created_at}
            for p, s in hits
        ],
    }


def _attr_text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(map(str, value[:3])) if value else "(none)"
    return str(value)


def persona_view_figure(view: dict[str, Any], max_chars: int = 22, pyplot: bool = True) -> Figure:
    """The static form of :func:`persona_view`: attribute table (truth vs backends, green = recovered, red =
    missed) on the left, the retrieved posts' BM25 scores on the right. ``pyplot=False``: see :func:`_new_figure`."""
    names = list(view["backends"])
    attrs = list(PERSONA_ATTRIBUTES)
    fig = _new_figure(pyplot, figsize=(11.5, 3.6))
    ax_t, ax_b = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
    ax_t.axis("off")
    cols = (["truth"] if view["truth"] else []) + names
    cells, colors = [], []
    for a in attrs:
        row = [_attr_text(view["truth"]["attributes"][a])] if view["truth"] else []
        crow = ["#f2f2f2"] * len(row)
        for n in names:
            b = view["backends"][n]
            row.append(_attr_text(b["decoded"][a]) if b["decoded"] else "(failed)")
            score = b["scores"][a] if b["scores"] else None
            crow.append("#ffffff" if score is None else plt.get_cmap("RdYlGn")(0.15 + 0.7 * score))
        cells.append(row)
        colors.append(crow)
    table = ax_t.table(
        cellText=[[figure_text(c) for c in row] for row in cells],
        cellColours=colors,
        rowLabels=attrs,
        colLabels=cols,
        loc="center",
        cellLoc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    table.scale(1, 1.35)
    ax_t.set_title(f"{view['screen_name']}: persona vs latent truth", fontsize=10)
    hits = view["retrieved"][::-1]
    texts = [figure_text(h["text"]) for h in hits]
    labels = [t[:max_chars] + ("…" if len(t) > max_chars else "") for t in texts]
    ax_b.barh(range(len(hits)), [h["score"] for h in hits], color="#4c72b0")
    ax_b.set_yticks(range(len(hits)))
    ax_b.set_yticklabels(labels, fontsize=7)
    ax_b.set_xlabel(f"{view['retrieval']['method'].upper()} score")
    ax_b.set_title(f"history retrieved for #{view['hashtag']}#", fontsize=10)
    fig.tight_layout()
    return fig


def _persona_html(view: dict[str, Any]) -> str:
    import html

    names = list(view["backends"])
    head = "".join(f"<th>{html.escape(n)}</th>" for n in (["truth"] if view["truth"] else []) + names)
    rows = []
    for item in ("interests", "language_style", "emotional_tone", "personality", "values"):
        cells = [view["truth"]["persona"][item]] if view["truth"] else []
        cells += [
            (view["backends"][n]["persona"] or {}).get(item, view["backends"][n]["error"] or "")
            for n in names
        ]
        rows.append(
            f"<tr><th>{item}</th>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>"
        )
    return f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def persona_explorer(
    data: Any,
    figures_dir: str | Path | None = None,
    backends: dict[str, Any] | None = None,
    static_name: str = "02_persona_explorer",
):
    """Pick a user (and a topic) → each backend's persona beside the true one, and the retrieved history with
    BM25 scores. Headless: the default selection is saved as ``figures/02_persona_explorer.png``; never blocks."""
    import html

    import ipywidgets as w
    from IPython.display import HTML, display

    world = data.world
    first = world.users[0].user_id
    view = persona_view(data, first, backends=backends)
    static = static_view(persona_view_figure(view, pyplot=False), static_name, figures_dir)
    if static is not None:
        return static

    users = _user_options(world)
    topics = _topic_options(world)
    user_dd = w.Dropdown(options=users, value=first, description="user", layout=w.Layout(width="45%"))
    topic_dd = w.Dropdown(
        options=topics, value=view["topic_id"], description="news", layout=w.Layout(width="55%")
    )
    out = w.Output()

    def render(*_: Any) -> None:
        out.clear_output(wait=True)
        with out:
            v = persona_view(data, user_dd.value, topic_dd.value, backends)
            display(HTML(_persona_html(v)))
            show_figure(persona_view_figure(v, pyplot=False))
            esc = html.escape
            said = (
                f"<p>reply: <i>{esc(v['reply'])}</i></p>" if v["reply"] else "<p>(no reply to this news)</p>"
            )
            display(HTML(f"<p><b>#{esc(v['hashtag'])}#</b> {esc(v['news'])}</p>{said}"))
            display(HTML(_html_list([f"{h['score']:.2f}  {h['text']}" for h in v["retrieved"]])))

    def on_user(change: dict) -> None:
        replied = _replied_topics(world, change["new"])
        if replied and topic_dd.value not in replied:
            topic_dd.value = replied[0]  # fires render through topic_dd's observer
        else:
            render()

    user_dd.observe(on_user, names="value")
    topic_dd.observe(render, names="value")
    render()
    return w.VBox([w.HBox([user_dd, topic_dd]), out])
