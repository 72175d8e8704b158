"""The generation explorer (notebook 04): pick a user and a news (or type one) → each SocialLLM's reply with
PAC-LoRA's gate weights, under chosen sampling settings, optionally with another user's persona ("swap persona").

:func:`generation_record` builds the record a model would see (as the dataset's records are built);
:func:`generation_view` decodes it with every model; :func:`generation_view_figure` is the static form and
:func:`generation_explorer` the widget.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from socialalign_lib.plots import figure_text

from .display import _new_figure, _topic_options, _user_options, show_figure
from .headless import static_view
from .persona import _persona_of


def _model_pair(entry: Any) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a ``socialllm.TrainedSocialLLM`` or a ``(model, tokenizer)`` pair."""
    if hasattr(entry, "model") and hasattr(entry, "tokenizer"):
        return entry.model, entry.tokenizer
    model, tokenizer = entry
    return model, tokenizer


def generation_record(
    data: Any,
    user_id: str,
    topic_id: str,
    news: str | None = None,
    persona_user_id: str | None = None,
    variant: str = "full",
) -> dict[str, Any]:
    """The SocialAlign record a SocialLLM would see for ``user_id`` answering ``topic_id``, built like the dataset's
    records (BM25 history for the news, minus the user's own reply to it; the user's persona), optionally with
    a typed ``news`` text instead of the topic's and with the persona of ``persona_user_id`` ("swap persona": the
    same name and history, another user's persona). ``output`` / ``sentiment`` are the user's real reply to the
    topic when there is one (and the news is the topic's own), else empty."""
    import hashlib

    from socialalign_lib.build.records.template import render_instruction
    from socialalign_lib.build.retrieval import retrieve_history

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
    instruction, user_span, news_span = render_instruction(
        user.screen_name, posts, persona, news_text, topic.hashtag, variant
    )
    own = reply is not None and news_text == topic.news
    key = hashlib.sha256(news_text.encode()).hexdigest()[:8]
    return {
        "case_id": f"explore|{topic_id}|{user_id}|{source}|{key}",
        "instruction": instruction,
        "input": "",
        "output": reply.post.text if own else "",
        "sentiment": reply.sentiment if own else None,
        "user_span": list(user_span),
        "news_span": list(news_span),
        "topic_id": topic_id,
        "user_id": user_id,
        "category": topic.category,
        "split": "explore",
        "variant": variant,
    }


def generation_view(
    data: Any,
    models: Mapping[str, Any],
    user_id: str,
    topic_id: str,
    news: str | None = None,
    persona_user_id: str | None = None,
    temperature: float = 0.7,
    top_p: float = 0.9,
    seed: int = 0,
    do_sample: bool = True,
    max_new_tokens: int = 48,
) -> dict[str, Any]:
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
    from socialalign_lib.generate.decode import generate_replies
    from socialalign_lib.generate.sampling import GenerationConfig

    record = generation_record(data, user_id, topic_id, news, persona_user_id)
    gen = GenerationConfig(
        do_sample=do_sample,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        max_new_tokens=max_new_tokens,
        batch_size=1,
    )
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
        "user_id": user_id,
        "screen_name": user.screen_name,
        "topic_id": topic_id,
        "hashtag": topic.hashtag,
        "category": topic.category,
        "news": record["instruction"][slice(*record["news_span"])],
        "custom_news": bool(news and news.strip() and news.strip() != topic.news),
        "persona_user_id": source,
        "persona": persona.to_dict() if persona is not None else None,
        "true_persona": world.latent_users[user_id].true_persona() if user_id in world.latent_users else None,
        "real_reply": record["output"] or None,
        "real_sentiment": record["sentiment"],
        "replies": replies,
        "gates": gates,
        "record": record,
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
    lines = [
        head + (" — custom news" if view["custom_news"] else ""),
        _wrap(view["news"], width),
        "",
        f"user {view['screen_name']}{swap}",
        "persona: " + _wrap(" / ".join((view["persona"] or {}).values()), width - 8),
        "real reply: " + _wrap(view["real_reply"] or "(none for this news)", width - 10),
        "",
    ]
    for name, text in view["replies"].items():
        lines.append(f"{name}: " + _wrap(text, width - len(name)))
    ax_text.text(
        0,
        1,
        figure_text("\n".join(lines)),
        va="top",
        ha="left",
        fontsize=8,
        family="sans-serif",
        transform=ax_text.transAxes,
    )
    mode = (
        "greedy"
        if not view["decoding"]["do_sample"]
        else (
            f"T={view['decoding']['temperature']}, top-p={view['decoding']['top_p']}, seed={view['decoding']['seed']}"
        )
    )
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


def generation_explorer(
    data: Any,
    models: Mapping[str, Any],
    figures_dir: str | Path | None = None,
    static_name: str = "04_generation_explorer",
    user_id: str | None = None,
    topic_id: str | None = None,
    max_new_tokens: int = 48,
):
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
    static = static_view(generation_view_figure(view, pyplot=False), static_name, figures_dir)
    if static is not None:
        return static

    users = _user_options(world)
    topics = _topic_options(world)
    layout = w.Layout(width="48%")
    user_dd = w.Dropdown(options=users, value=user_id, description="user", layout=layout)
    topic_dd = w.Dropdown(options=topics, value=topic_id, description="news", layout=layout)
    persona_dd = w.Dropdown(
        options=[("(own persona)", "")] + users, value="", description="persona", layout=layout
    )
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
        show(
            generation_view(
                data,
                models,
                user_dd.value,
                topic_dd.value,
                news_box.value or None,
                persona_dd.value or None,
                temperature.value,
                top_p.value,
                seed.value,
                sample.value,
                max_new_tokens,
            )
        )

    button.on_click(on_click)
    show(view)
    controls = w.VBox(
        [
            w.HBox([user_dd, topic_dd]),
            w.HBox([persona_dd, news_box]),
            w.HBox([temperature, top_p]),
            w.HBox([seed, sample, button]),
        ]
    )
    return w.VBox([controls, out])
