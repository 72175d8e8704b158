"""Interactive explorers (ipywidgets) for teaching and exploratory analysis.

Each explorer is a *pure view function* (selection → a dict of what to show) plus a thin widget that calls it.
Tests and plain Python call the view functions directly; notebooks call ``*_explorer(...)`` in one line. When the
notebook runs headless the view for the default selection is rendered as a static figure saved to ``figures/``
and nothing ever waits for input: under ``course.execute_notebook`` (``make course``, the notebook tests), which
sets ``SOCIALALIGN_HEADLESS=1``, the explorers show that figure instead of building widgets, because nbclient can
block on widget comm messages (jupyter/nbclient#312; seen here in about one run in five).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .plots import DPI, figure_text, label_colors, save_figure
from .world import World

HEADLESS_ENV = "SOCIALALIGN_HEADLESS"


def headless() -> bool:
    """True when a runner without a widget front-end executes the notebook (set by ``course.execute_notebook``)."""
    return os.environ.get(HEADLESS_ENV) == "1"


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


def _static(path: Path):
    """What a headless explorer returns: the saved static view, displayed as the cell's result."""
    from IPython.display import Image

    return Image(filename=str(path))

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
                                f"#{v['hashtag']}# [{v['category']}]", pyplot=False)
        display(HTML(f"<p><b>{v['news']}</b></p>"))
        show_figure(fig)
        display(HTML(_html_list([f"{r['sentiment']}: {r['text']} — {r['persona']['values']} / {r['persona']['personality']}"
                                  for r in v["replies"]])))

    def render_user(uid: str) -> None:
        v = user_view(world, uid)
        display(HTML(f"<p><b>{v['screen_name']}</b> — " + "; ".join(f"{k}: {x}" for k, x in v["persona"].items()) + "</p>"))
        display(HTML(_html_list(v["history"])))

    first = world.topics[0].topic_id
    v = topic_view(world, first)
    fig = distribution_bars({"true p(s|topic)": v["true_distribution"], "observed": v["empirical_distribution"]},
                            f"World explorer (static view): #{v['hashtag']}#", pyplot=False)
    static = save_figure(fig, static_name, figures_dir)
    if headless():
        return _static(static)
    topics = _topic_options(world)
    users = _user_options(world)
    return w.Tab(children=[_widget(topics, render_topic, "topic"), _widget(users, render_user, "user")],
                 titles=("topics", "users"))


# ------------------------------------------------------------------------------------------ persona explorer

PERSONA_ATTRIBUTES: dict[str, str] = {
    "interests": "interests_overlap@3", "emotional_baseline": "emotional_tone_acc", "length_class": "length_acc",
    "emoji": "emoji_acc", "catch_phrase": "catch_phrase_acc", "personality": "personality_acc",
    "archetype": "values_acc",
}
"""The latent attributes a persona is scored on (``persona.decode_persona``'s keys) → the per-user metric of
``persona.persona_recovery`` that scores it (1 = recovered; interests: overlap of the top 3 / 3)."""


def true_attributes(world: World, user_id: str) -> dict[str, Any]:
    """A user's latent truth in ``decode_persona``'s vocabulary (catch-phrases: the list of the user's own)."""
    lu = world.latent_users[user_id]
    return {"interests": lu.top_interests(3), "emotional_baseline": lu.emotional_baseline,
            "length_class": lu.length_class, "emoji": lu.emoji_rate >= 0.5, "catch_phrase": list(lu.catch_phrases),
            "personality": lu.personality, "archetype": lu.archetype}


def _persona_of(source: Any, user: Any) -> tuple[Any, str | None]:
    """``(Persona | None, error | None)`` from a mapping user_id → Persona/PersonaRecord or a callable(user)."""
    from .persona import PersonaError, PersonaRecord

    try:
        value = source(user) if callable(source) else source.get(user.user_id)
    except PersonaError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if isinstance(value, PersonaRecord):
        return value.persona, value.error
    return value, None if value is not None else "no persona for this user"


def _replied_topics(world: World, user_id: str) -> list[str]:
    return [r.topic_id for r in world.responses if r.post.user_id == user_id]


def persona_view(data: Any, user_id: str, topic_id: str | None = None, backends: dict[str, Any] | None = None,
                 retrieval: Any | None = None) -> dict[str, Any]:
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
    from .persona import decode_persona, persona_recovery
    from .retrieval import retrieve_history

    world = data.world
    user = world.user(user_id)  # KeyError for an unknown user
    replied = _replied_topics(world, user_id)
    topic_id = topic_id or (replied[0] if replied else world.topics[0].topic_id)
    topic = world.topic(topic_id)
    reply = next((r.post for r in world.responses if r.topic_id == topic_id and r.post.user_id == user_id), None)
    truth = (
        {"persona": world.latent_users[user_id].true_persona(), "attributes": true_attributes(world, user_id)}
        if user_id in world.latent_users else None
    )
    views = {}
    for name, source in (backends if backends is not None else {"statistical": data.personas}).items():
        persona, error = _persona_of(source, user)
        entry: dict[str, Any] = {"persona": persona.to_dict() if persona else None, "error": error,
                                 "decoded": None, "scores": None}
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
        "user_id": user_id, "screen_name": user.screen_name, "n_history": len(user.history),
        "truth": truth, "backends": views,
        "topic_id": topic_id, "hashtag": topic.hashtag, "news": topic.news, "replied_topics": replied,
        "reply": reply.text if reply is not None else None,
        "retrieval": {"method": cfg.method, "k": cfg.k, "tokenizer": cfg.tokenizer},
        "retrieved": [{"post_id": p.post_id, "text": p.full_text, "score": s, "created_at": p.created_at}
                      for p, s in hits],
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
    table = ax_t.table(cellText=[[figure_text(c) for c in row] for row in cells], cellColours=colors,
                       rowLabels=attrs, colLabels=cols, loc="center", cellLoc="center")
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


def highlight_spans(text: str, spans: dict[str, tuple[int, int] | list[int]],
                    colors: dict[str, str] | None = None) -> str:
    """HTML of ``text`` with each named ``[start, end)`` character span marked (e.g. a record's ``user_span``
    and ``news_span``), so a reader sees exactly what the recorded offsets cover. Spans must not overlap."""
    import html

    palette = colors or {}
    default = ["#cfe8ff", "#ffe3a3", "#d9f2d0", "#f6d0e6"]
    order = sorted(spans.items(), key=lambda kv: kv[1][0])
    out, pos = [], 0
    for i, (name, (s, e)) in enumerate(order):
        if not 0 <= pos <= s < e <= len(text):
            raise ValueError(f"span {name}={[s, e]} overlaps another span or lies outside the text (len {len(text)})")
        color = palette.get(name, default[i % len(default)])
        out.append(html.escape(text[pos:s]))
        out.append(f'<mark title="{html.escape(name)}" style="background:{color}">{html.escape(text[s:e])}</mark>')
        pos = e
    out.append(html.escape(text[pos:]))
    legend = " ".join(f'<mark style="background:{palette.get(n, default[i % len(default)])}">{html.escape(n)}</mark>'
                      for i, (n, _) in enumerate(order))
    return f'<div style="white-space:pre-wrap;font-size:90%">{legend}\n\n{"".join(out)}</div>'


def _persona_html(view: dict[str, Any]) -> str:
    import html

    names = list(view["backends"])
    head = "".join(f"<th>{html.escape(n)}</th>" for n in (["truth"] if view["truth"] else []) + names)
    rows = []
    for item in ("interests", "language_style", "emotional_tone", "personality", "values"):
        cells = [view["truth"]["persona"][item]] if view["truth"] else []
        cells += [(view["backends"][n]["persona"] or {}).get(item, view["backends"][n]["error"] or "")
                  for n in names]
        rows.append(f"<tr><th>{item}</th>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def persona_explorer(data: Any, figures_dir: str | Path | None = None, backends: dict[str, Any] | None = None,
                     static_name: str = "02_persona_explorer"):
    """Pick a user (and a topic) → each backend's persona beside the true one, and the retrieved history with
    BM25 scores. Headless: the default selection is saved as ``figures/02_persona_explorer.png``; never blocks."""
    import html

    import ipywidgets as w
    from IPython.display import HTML, display

    world = data.world
    first = world.users[0].user_id
    view = persona_view(data, first, backends=backends)
    static = save_figure(persona_view_figure(view, pyplot=False), static_name, figures_dir)
    if headless():
        return _static(static)

    users = _user_options(world)
    topics = _topic_options(world)
    user_dd = w.Dropdown(options=users, value=first, description="user", layout=w.Layout(width="45%"))
    topic_dd = w.Dropdown(options=topics, value=view["topic_id"], description="news", layout=w.Layout(width="55%"))
    out = w.Output()

    def render(*_: Any) -> None:
        out.clear_output(wait=True)
        with out:
            v = persona_view(data, user_dd.value, topic_dd.value, backends)
            display(HTML(_persona_html(v)))
            show_figure(persona_view_figure(v, pyplot=False))
            esc = html.escape
            said = f"<p>reply: <i>{esc(v['reply'])}</i></p>" if v["reply"] else "<p>(no reply to this news)</p>"
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


# ------------------------------------------------------------------------------------------ crowd explorer


def crowd_view(labelled: Any, topic_id: str, comparison: Any | None = None, world: World | None = None,
               labels: tuple[str, ...] | list[str] | None = None, n_replies: int = 4, n_boot: int = 1000,
               seed: int = 0) -> dict[str, Any]:
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
    from .divergence import compare_crowds
    from .macro import PRED_COL, REAL_COL, crowd_frames, true_crowd
    from .schema import SENTIMENTS

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
        "topic_id": topic_id, "labels": labels,
        "category": str(rows["category"].iloc[0]) if "category" in rows else None,
        "hashtag": None, "news": None,
        "real_distribution": {lab: float(c[f"real_{lab}"]) for lab in labels},
        "pred_distribution": {lab: float(c[f"pred_{lab}"]) for lab in labels},
        "true_distribution": None,
        "n_real": int(c["n_real"]), "n_pred": int(c["n_pred"]),
    }
    for name in ("js", "kl", "tv"):
        view[name] = float(c[name])
        view[f"{name}_ci"] = (float(c[f"{name}_low"]), float(c[f"{name}_high"])) if f"{name}_low" in c else None
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
            replies[side][lab] = [{"user_id": str(u), "text": str(t)}
                                  for u, t in zip(seg["user_id"].head(n_replies), seg[text_col].head(n_replies))]
    view["replies"], view["counts"] = replies, counts
    return view


def _ci_text(view: dict[str, Any], name: str) -> str:
    ci = view[f"{name}_ci"]
    return f"{name.upper()} {view[name]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def crowd_view_figure(view: dict[str, Any], method: str = "generated", max_chars: int = 34,
                      pyplot: bool = True) -> Figure:
    """The static form of :func:`crowd_view`: stacked bars (real, generated, and the truth when known) with the
    divergences in the title, and one example reply per bar segment underneath (emoji as ``[名称]`` codes,
    :func:`~socialalign_lib.plots.figure_text`). ``pyplot=False``: see :func:`_new_figure`."""
    dists = {f"real ({view['n_real']})": view["real_distribution"],
             f"{method} ({view['n_pred']})": view["pred_distribution"]}
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
    ax.set_title(f"{view['topic_id']} {head}[{view['category']}]\n"
                 f"{_ci_text(view, 'js')} · {_ci_text(view, 'kl')} · {_ci_text(view, 'tv')}", fontsize=9)
    ax_txt.axis("off")
    lines = []
    for side in ("real", "generated"):
        for lab in labels:
            ex = view["replies"][side][lab]
            text = figure_text(ex[0]["text"]).replace("\n", " ") if ex else "—"
            text = text[:max_chars] + ("…" if len(text) > max_chars else "")
            lines.append(f"{'real' if side == 'real' else method:>10} · {lab:<8} ({view['counts'][side][lab]:>2}): {text}")
    ax_txt.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=8, family="sans-serif",
                transform=ax_txt.transAxes)
    fig.tight_layout()
    return fig


def crowd_explorer(labelled: Any, comparison: Any | None = None, world: World | None = None,
                   figures_dir: str | Path | None = None, method: str = "generated",
                   static_name: str = "05_crowd_explorer", topic_id: str | None = None):
    """Pick a topic → real vs generated crowd (stacked bars, with the truth when ``world`` is given), JS / KL / TV
    with CIs, and the replies behind each bar. Headless runs save the view of ``topic_id`` (default: the first
    topic) as ``figures/05_crowd_explorer.png``; the widget never waits for input."""
    import html

    from IPython.display import HTML, display

    topics = sorted(set(labelled["topic_id"]))
    first = topic_id or topics[0]
    fig = crowd_view_figure(crowd_view(labelled, first, comparison, world), method, pyplot=False)
    static = save_figure(fig, static_name, figures_dir)
    if headless():
        return _static(static)

    def render(tid: str) -> None:
        v = crowd_view(labelled, tid, comparison, world)
        if v["news"]:
            display(HTML(f"<p><b>#{html.escape(v['hashtag'])}#</b> {html.escape(v['news'])}</p>"))
        show_figure(crowd_view_figure(v, method, pyplot=False))
        for side in ("real", "generated"):
            items = [f"{lab} ({v['counts'][side][lab]}): {r['text']}" for lab in v["labels"]
                     for r in v["replies"][side][lab]]
            display(HTML(f"<p><b>{side if side == 'real' else method}</b></p>" + _html_list(items)))

    def label(tid: str) -> str:
        return f"{tid} #{world.topic(tid).hashtag}#" if world is not None else tid

    return _widget([(label(t), t) for t in topics], render, "topic")


# ------------------------------------------------------------------------------------------ generation explorer


def _model_pair(entry: Any) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a ``socialllm.TrainedSocialLLM`` or a ``(model, tokenizer)`` pair."""
    if hasattr(entry, "model") and hasattr(entry, "tokenizer"):
        return entry.model, entry.tokenizer
    model, tokenizer = entry
    return model, tokenizer


def generation_record(data: Any, user_id: str, topic_id: str, news: str | None = None,
                      persona_user_id: str | None = None, variant: str = "full") -> dict[str, Any]:
    """The SocialAlign record a SocialLLM would see for ``user_id`` answering ``topic_id``, built like the dataset's
    records (BM25 history for the news, minus the user's own reply to it; the user's persona), optionally with
    a typed ``news`` text instead of the topic's and with the persona of ``persona_user_id`` ("swap persona": the
    same name and history, another user's persona). ``output`` / ``sentiment`` are the user's real reply to the
    topic when there is one (and the news is the topic's own), else empty."""
    import hashlib

    from .records import render_instruction
    from .retrieval import retrieve_history

    world = data.world
    user, topic = world.user(user_id), world.topic(topic_id)  # KeyError for unknown ids
    reply = next((r for r in world.responses if r.topic_id == topic_id and r.post.user_id == user_id), None)
    news_text = news.strip() if news and news.strip() else topic.news
    source = persona_user_id or user_id
    persona, error = _persona_of(data.personas, world.user(source))
    if persona is None and variant != "without_persona":
        raise ValueError(f"generation_record: no persona for user {source}: {error}")
    history = [p for p in user.history if reply is None or p.post_id != reply.post.post_id]
    posts = [p for p, _ in retrieve_history(history, news_text, data.config.retrieval)]
    instruction, user_span, news_span = render_instruction(user.screen_name, posts, persona, news_text,
                                                           topic.hashtag, variant)
    own = reply is not None and news_text == topic.news
    key = hashlib.sha256(news_text.encode()).hexdigest()[:8]
    return {"case_id": f"explore|{topic_id}|{user_id}|{source}|{key}", "instruction": instruction, "input": "",
            "output": reply.post.text if own else "", "sentiment": reply.sentiment if own else None,
            "user_span": list(user_span), "news_span": list(news_span), "topic_id": topic_id, "user_id": user_id,
            "category": topic.category, "split": "explore", "variant": variant}


def generation_view(data: Any, models: Mapping[str, Any], user_id: str, topic_id: str, news: str | None = None,
                    persona_user_id: str | None = None, temperature: float = 0.7, top_p: float = 0.9,
                    seed: int = 0, do_sample: bool = True, max_new_tokens: int = 48) -> dict[str, Any]:
    """Replies of several SocialLLMs to one (user, news) pair, with the PAC-LoRA gate weights behind them.

    ``models`` maps a display name (e.g. "base (zero-shot)", "LoRA", "PAC-LoRA") to a ``TrainedSocialLLM`` or a
    ``(model, tokenizer)`` pair. Decoding is ``socialllm.generate_replies`` with the official top-k 20 and
    repetition penalty 1.2 and the given temperature / top-p / seed (``do_sample=False``: greedy).

    Returns a dict with the pair (``user_id``, ``screen_name``, ``topic_id``, ``hashtag``, ``category``,
    ``news``, ``custom_news``), the persona used (``persona_user_id``, ``persona``: its five items) and the true
    persona of the user, the real reply (``real_reply`` / ``real_sentiment``, None when the user did not answer
    this news), ``replies`` (name → text, every model) and ``gates`` (name → ``{"gate_a": [n], "gate_b": [n]}``,
    layer-averaged, PAC-LoRA models only; each sums to 1), and the ``record`` itself.
    """
    from .socialllm import GenerationConfig, generate_replies

    record = generation_record(data, user_id, topic_id, news, persona_user_id)
    gen = GenerationConfig(do_sample=do_sample, temperature=temperature, top_p=top_p, seed=seed,
                           max_new_tokens=max_new_tokens, batch_size=1)
    replies, gates = {}, {}
    for name, entry in models.items():
        model, tokenizer = _model_pair(entry)
        row = generate_replies(model, tokenizer, [record], gen, progress=False).iloc[0]
        replies[name] = row["generated"]
        if len(row["gate_a"]):
            gates[name] = {"gate_a": list(row["gate_a"]), "gate_b": list(row["gate_b"])}
    world = data.world
    topic, user = world.topic(topic_id), world.user(user_id)
    source = persona_user_id or user_id
    persona, _ = _persona_of(data.personas, world.user(source))
    return {
        "user_id": user_id, "screen_name": user.screen_name, "topic_id": topic_id, "hashtag": topic.hashtag,
        "category": topic.category, "news": record["instruction"][slice(*record["news_span"])],
        "custom_news": bool(news and news.strip() and news.strip() != topic.news),
        "persona_user_id": source, "persona": persona.to_dict() if persona is not None else None,
        "true_persona": world.latent_users[user_id].true_persona() if user_id in world.latent_users else None,
        "real_reply": record["output"] or None, "real_sentiment": record["sentiment"],
        "replies": replies, "gates": gates, "record": record,
        "decoding": {"do_sample": do_sample, "temperature": temperature, "top_p": top_p, "seed": seed},
    }


@contextmanager
def _no_glyph_warnings() -> Iterator[None]:
    """Interactive views only: a typed news may hold characters no font has (boxes, but no flood of warnings
    under the widget). Saved figures are checked instead (``plots.save_figure`` raises)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        yield


def _wrap(text: str, width: int) -> str:
    """Wrapped to ``width`` characters, emoji as ``[名称]`` codes (``plots.figure_text``): the figure font has
    no emoji."""
    import textwrap

    return "\n".join(textwrap.wrap(figure_text(text).replace("\n", " "), width)) or "(empty)"


def generation_view_figure(view: dict[str, Any], width: int = 40, pyplot: bool = True) -> Figure:
    """The static form of :func:`generation_view`: the news, the real reply and each model's reply on the left;
    gate A and gate B of each PAC-LoRA model as bars on the right (dashed line: uniform 1/n). ``pyplot=False``:
    see :func:`_new_figure`."""
    gated = list(view["gates"])
    fig = _new_figure(pyplot, figsize=(11.5, 1.8 + 1.1 * max(1, len(gated)) + 0.3 * len(view["replies"])))
    grid = fig.add_gridspec(max(1, len(gated)), 3, width_ratios=[2.6, 1, 1])
    ax_text = fig.add_subplot(grid[:, 0])
    ax_text.axis("off")
    swap = "" if view["persona_user_id"] == view["user_id"] else f" (persona of {view['persona_user_id']})"
    head = figure_text(f"#{view['hashtag']}# [{view['category']}]")
    lines = [head + (" — custom news" if view["custom_news"] else ""),
             _wrap(view["news"], width), "", f"user {view['screen_name']}{swap}",
             "persona: " + _wrap(" / ".join((view["persona"] or {}).values()), width - 8),
             "real reply: " + _wrap(view["real_reply"] or "(none for this news)", width - 10), ""]
    for name, text in view["replies"].items():
        lines.append(f"{name}: " + _wrap(text, width - len(name)))
    ax_text.text(0, 1, figure_text("\n".join(lines)), va="top", ha="left", fontsize=8, family="sans-serif",
                 transform=ax_text.transAxes)
    mode = "greedy" if not view["decoding"]["do_sample"] else (
        f"T={view['decoding']['temperature']}, top-p={view['decoding']['top_p']}, seed={view['decoding']['seed']}")
    ax_text.set_title(f"Generation explorer ({mode})", fontsize=10, loc="left")
    for i, name in enumerate(gated):
        for j, (side, label) in enumerate((("gate_a", "gate A (news)"), ("gate_b", "gate B (user)"))):
            ax = fig.add_subplot(grid[i, 1 + j])
            weights = view["gates"][name][side]
            ax.bar(range(1, len(weights) + 1), weights, color="#4c72b0" if side == "gate_a" else "#dd8452")
            ax.axhline(1 / len(weights), color="grey", ls="--", lw=0.8, label="uniform 1/n")
            ax.set_ylim(0, max(0.6, max(weights) * 1.15))
            ax.set_xticks(range(1, len(weights) + 1))
            ax.set_xlabel("expert", fontsize=8)
            ax.set_ylabel("gate weight (mean over layers)", fontsize=8)
            if i == 0 and j == 0:
                ax.legend(loc="upper right", fontsize=7, frameon=False)
            ax.set_title(f"{name}: {label}", fontsize=8)
    fig.tight_layout()
    return fig


def generation_explorer(data: Any, models: Mapping[str, Any], figures_dir: str | Path | None = None,
                        static_name: str = "04_generation_explorer", user_id: str | None = None,
                        topic_id: str | None = None, max_new_tokens: int = 48):
    """Pick a user and a news (or type one) → the replies of each model with PAC-LoRA's gate weights; sampling
    controls (temperature, top-p, seed, greedy) and "swap persona" (the same user block with another user's
    persona). Generation runs on the "generate" button (a few seconds on CPU). Headless: the default selection
    (the first held-out ``test_user`` case unless given) is rendered and saved as
    ``figures/04_generation_explorer.png``; nothing waits for input."""
    import ipywidgets as w

    world = data.world
    if user_id is None or topic_id is None:
        held_out = data.dataset["test_user"] if len(data.dataset["test_user"]) else data.dataset["train"]
        user_id, topic_id = user_id or held_out[0]["user_id"], topic_id or held_out[0]["topic_id"]
    view = generation_view(data, models, user_id, topic_id, max_new_tokens=max_new_tokens)
    static = save_figure(generation_view_figure(view, pyplot=False), static_name, figures_dir)
    if headless():
        return _static(static)

    users = _user_options(world)
    topics = _topic_options(world)
    layout = w.Layout(width="48%")
    user_dd = w.Dropdown(options=users, value=user_id, description="user", layout=layout)
    topic_dd = w.Dropdown(options=topics, value=topic_id, description="news", layout=layout)
    persona_dd = w.Dropdown(options=[("(own persona)", "")] + users, value="", description="persona", layout=layout)
    news_box = w.Textarea(value="", placeholder="type a news text (empty: the topic's news)", layout=layout)
    temperature = w.FloatSlider(value=0.7, min=0.1, max=1.5, step=0.05, description="temperature")
    top_p = w.FloatSlider(value=0.9, min=0.3, max=1.0, step=0.05, description="top-p")
    seed = w.IntText(value=0, description="seed")
    sample = w.Checkbox(value=True, description="sample (off: greedy)")
    button = w.Button(description="generate", button_style="primary")
    out = w.Output()

    def show(v: dict[str, Any]) -> None:
        out.clear_output(wait=True)
        with out, _no_glyph_warnings():
            show_figure(generation_view_figure(v, pyplot=False))

    def on_click(_: Any) -> None:
        show(generation_view(data, models, user_dd.value, topic_dd.value, news_box.value or None,
                             persona_dd.value or None, temperature.value, top_p.value, seed.value, sample.value,
                             max_new_tokens))

    button.on_click(on_click)
    show(view)
    controls = w.VBox([w.HBox([user_dd, topic_dd]), w.HBox([persona_dd, news_box]),
                       w.HBox([temperature, top_p]), w.HBox([seed, sample, button])])
    return w.VBox([controls, out])
