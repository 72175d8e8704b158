"""Evaluation of trendy-response generators on held-out events, and the figures of the PopALM notebook.

Per model, ``n`` sampled replies per held-out event (:func:`generate_replies`) are scored by

* ``rm``: the reward model's standardised score (0 = an average real reply, 1 = one standard deviation better).
  PPO optimises this very function, so it measures how well the policy pleased its critic, not the public;
* ``rouge_lw``: like-weighted ROUGE-L F1 (:func:`like_weighted_rouge`): overlap with the event's top-liked real
  replies, each weighted by its share of their likes. Independent of the reward model;
* ``kl``: KL(policy ‖ SFT reference) in nats per reply, estimated on the same samples (0 for the SFT model;
  NaN, "n/a", for real replies: no policy wrote them);
* ``truth``: for the embedded world only, the text-visible part of the world's like model
  (:func:`text_popularity`): what the *true* popularity model says about the generated text;
* ``distinct-2`` and mean length in characters, to catch a policy that found one phrase the critic loves.

PopALM's own table (ROUGE-1/2/L and BLEU-4, best over the 10 gold replies at top-1/3/5) is
``socialalign_lib.metrics.popalm_scores`` on the same generations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..metrics import distinct_n, rouge_f1
from .data import Event
from .ppo import batch_sequences, response_logprobs, sample_responses
from .reward import RewardScorer

__all__ = [
    "GenerationConfig",
    "generate_replies",
    "like_weighted_rouge",
    "text_popularity",
    "world_like_scores",
    "sequence_kl",
    "evaluate_replies",
    "summary_table",
    "plot_training",
    "plot_difficulty",
    "plot_eval",
]


@dataclass
class GenerationConfig:
    """Sampling for evaluation: the same temperature PPO trained with, no truncation, ``n`` replies per event."""

    n: int = 5
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    batch_size: int = 64
    seed: int = 0


@torch.no_grad()
def generate_replies(
    model: Any, tokenizer: Any, events: Sequence[Event], cfg: GenerationConfig | None = None
) -> tuple[list[list[str]], list[list[torch.Tensor]], list[torch.Tensor]]:
    """``cfg.n`` sampled replies per event: ``(texts [events][n], response ids [events][n], query ids [events])``.
    Seeded without touching the caller's torch RNG."""
    cfg = cfg or GenerationConfig()
    queries = [
        tokenizer(e.prompt, return_tensors="pt", add_special_tokens=False).input_ids[0] for e in events
    ]
    flat = [q for q in queries for _ in range(cfg.n)]
    out: list[torch.Tensor] = []
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        model.eval()
        for s in range(0, len(flat), cfg.batch_size):
            out += sample_responses(
                model,
                flat[s : s + cfg.batch_size],
                tokenizer.pad_token_id,
                tokenizer.eos_token_id,
                cfg.max_new_tokens,
                cfg.temperature,
                cfg.top_k,
                cfg.top_p,
            )
    ids = [out[i * cfg.n : (i + 1) * cfg.n] for i in range(len(events))]
    texts = [[tokenizer.decode(r, skip_special_tokens=True).strip() for r in row] for row in ids]
    return texts, ids, queries


def like_weighted_rouge(
    reply: str,
    refs: Sequence[str],
    likes: Sequence[int] | None,
    key: str = "rouge-l",
    tokenizer: str = "char",
) -> float:
    """``Σ_i w_i · ROUGE_F1(reply, refs[i])`` with ``w_i = likes_i / Σ likes`` over the given (top-liked)
    references; uniform weights when ``likes`` is None or all zero. Rewards overlap with what the public liked,
    in proportion to how much they liked it."""
    if not refs:
        raise ValueError("no references")
    w = np.ones(len(refs)) if likes is None else np.asarray(likes, dtype=float)
    if w.sum() <= 0:
        w = np.ones(len(refs))
    scores = np.array([rouge_f1(reply, r, tokenizer)[key] for r in refs])  # type: ignore[arg-type]
    return float((w / w.sum()) @ scores)


def text_popularity(texts: Sequence[str], labeller: Any) -> np.ndarray:
    """The part of the embedded world's like model a reply's *text* controls (``world/latent.py``)::

        0.7·P(non-neutral) + 0.4·[emoji] + 0.3·[2–3 clauses] − 0.4·[≥ 4 clauses] + 0.6·[a humorous clause]

    in ``log1p(likes)`` units. ``P(non-neutral)`` comes from a sentiment ``labeller`` (``predict_proba`` over
    labels ordered negative → positive, e.g. ``sentiment.train_world_labeller``). Approximations: the world
    sets length by the *user's* length class and humour by the user's personality; here they are read off the
    text (clauses split at "，"; a humorous personality's signature clause). Followers and reply rank, the rest of
    the model, are not in the text at all."""
    from ..world import lexicon as lx

    emoji = [e for es in lx.EMOJI.values() for e in es]
    humour = [str(x) for x in lx.PERSONALITIES["humorous"]["extra"]]  # type: ignore[union-attr]
    proba = np.asarray(labeller.predict_proba(list(texts)), dtype=float)
    labels = list(labeller.labels)
    neutral = proba[:, labels.index("neutral")] if "neutral" in labels else np.zeros(len(texts))
    out = []
    for t, p_neu in zip(texts, neutral):
        clauses = len([c for c in t.split("，") if c.strip()])
        out.append(
            0.7 * (1.0 - p_neu)
            + 0.4 * any(e in t for e in emoji)
            + 0.3 * (2 <= clauses <= 3)
            - 0.4 * (clauses >= 4)
            + 0.6 * any(h in t for h in humour)
        )
    return np.array(out) * np.array([bool(t.strip()) for t in texts])


def world_like_scores(world: Any, events: Sequence[Event]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For world events (:func:`~socialalign_lib.popalm.data.events_from_world`), per reply in like order: the
    world's true mean ``log1p(likes)`` (``latent.likes_mu``: topic heat, followers, sentiment, humour, emoji,
    length, reply rank) and its *text-visible* part (sentiment, humour, emoji, length only). Their pairwise
    accuracies against the observed likes are the ceilings for a perfect model of everything / of the text: the
    rest of the like order is noise that no reward model reading the reply can learn."""
    from ..world import lexicon as lx
    from ..world.latent import likes_mu, polarity

    emoji = [e for es in lx.EMOJI.values() for e in es]
    by_topic: dict[str, list] = {}
    for r in world.responses:
        by_topic.setdefault(r.topic_id, []).append(r)
    full, text = [], []
    for e in events:
        rs = by_topic[e.event_id]
        order = sorted(range(len(rs)), key=lambda i: -rs[i].post.likes)  # the stable sort Event uses
        f, t = [], []
        for i in order:
            r = rs[i]
            lu, lt = world.latent_users[r.post.user_id], world.latent_topics[r.topic_id]
            pol = polarity(r.sentiment, world.labels)
            has_emoji = any(x in r.post.text for x in emoji)
            rank = int(r.post.post_id.rsplit("r", 1)[1])
            f.append(likes_mu(lt.heat, lu.followers, pol, lu.personality, has_emoji, lu.length_class, rank))
            t.append(likes_mu(0.0, 0, pol, lu.personality, has_emoji, lu.length_class, 10**9))
        full.append(np.array(f))
        text.append(np.array(t))
    return full, text


@torch.no_grad()
def sequence_kl(
    model: Any,
    queries: Sequence[torch.Tensor],
    responses: Sequence[torch.Tensor],
    pad_token_id: int,
    temperature: float = 1.0,
    batch_size: int = 64,
) -> np.ndarray:
    """Per-reply ``Σ_t log π(a_t) − log π_ref(a_t)`` for replies sampled from ``model`` (a peft model; its base
    with adapters disabled is the reference): an unbiased estimate of KL(π‖π_ref) per reply, in nats.
    Zeros for a model without adapters (it *is* its reference)."""
    if not hasattr(model, "disable_adapter"):
        return np.zeros(len(responses))
    device = next(model.parameters()).device
    out = []
    for s in range(0, len(responses), batch_size):
        ids, mask, rmask, q_len = batch_sequences(
            queries[s : s + batch_size], responses[s : s + batch_size], pad_token_id, device
        )
        logp = response_logprobs(model, ids, mask, q_len, temperature)
        with model.disable_adapter():
            ref = response_logprobs(model, ids, mask, q_len, temperature)
        out.append(((logp - ref) * rmask).sum(1).cpu().numpy())
    return np.concatenate(out)


def evaluate_replies(
    name: str,
    events: Sequence[Event],
    replies: Sequence[Sequence[str]],
    scorer: RewardScorer,
    n_refs: int = 10,
    kl: np.ndarray | None = None,
    popularity: Callable[[Sequence[str]], np.ndarray] | None = None,
) -> pd.DataFrame:
    """One row per generated reply: ``model, event_id, reply, rm, rouge_lw, kl, truth (if popularity given),
    length``. ``kl`` is per reply in the same (event-major) order; without it (real replies) ``kl`` is NaN, not
    0: there is no policy to measure."""
    rows = []
    flat = [(e, r) for e, rs in zip(events, replies) for r in rs]
    rm = scorer([e.prompt for e, _ in flat], [r for _, r in flat])
    truth = popularity([r for _, r in flat]) if popularity is not None else None
    for i, (e, r) in enumerate(flat):
        row = {
            "model": name,
            "event_id": e.event_id,
            "reply": r,
            "rm": float(rm[i]),
            "rouge_lw": like_weighted_rouge(r, e.top(n_refs), e.top_likes(n_refs)),
            "kl": float(kl[i]) if kl is not None else float("nan"),
            "length": len(r),
        }
        if truth is not None:
            row["truth"] = float(truth[i])
        rows.append(row)
    return pd.DataFrame(rows)


def summary_table(per_reply: pd.DataFrame) -> pd.DataFrame:
    """Means per model (events weigh equally: mean over the event means) with a ± standard error over events,
    plus distinct-2 over all of a model's replies."""
    metrics = [c for c in ("rm", "rouge_lw", "truth", "kl", "length") if c in per_reply]
    by_event = per_reply.groupby(["model", "event_id"], sort=False)[metrics].mean()
    mean = by_event.groupby(level="model", sort=False).mean()
    sem = by_event.groupby(level="model", sort=False).sem().add_suffix(" ±")
    out = pd.concat([mean, sem], axis=1)[[c for m in metrics for c in (m, m + " ±")]]
    out["distinct-2"] = per_reply.groupby("model", sort=False)["reply"].apply(
        lambda s: distinct_n(list(s), 2)
    )
    return out


def _smooth(x: np.ndarray, w: int) -> np.ndarray:
    if w <= 1 or len(x) < w:
        return x
    return np.convolve(x, np.ones(w) / w, mode="valid")


def plot_training(histories: Mapping[str, Sequence[Mapping[str, float]]], smooth: int = 5):
    """Reward (training reward-model score, standardised) and KL to the SFT reference (nats per reply) against PPO
    step, one line per run, moving average over ``smooth`` steps; curriculum stage boundaries dotted."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, rows in histories.items():
        steps = np.array([r["step"] for r in rows])
        for ax, key in zip(axes, ("rm", "kl")):
            y = np.array([r.get(key, np.nan) for r in rows], dtype=float)
            ys = _smooth(y, smooth)
            ax.plot(steps[len(steps) - len(ys) :], ys, label=name)
        stages = np.array([r.get("stage", 0) for r in rows])
        for b in steps[1:][np.diff(stages) != 0]:
            for ax in axes:
                ax.axvline(b, color="grey", ls=":", lw=1)
    axes[0].set(xlabel="PPO step", ylabel="reward-model score (std units)", title="Reward on training events")
    axes[1].set(xlabel="PPO step", ylabel="KL(policy ‖ SFT), nats per reply", title="KL to the SFT reference")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_difficulty(
    difficulty: Mapping[str, float],
    stages: Sequence[Sequence[str]],
    like_gap: Mapping[str, float] | None = None,
):
    """Training events sorted easy → hard, coloured by curriculum stage; with ``like_gap`` (difficulty from likes
    alone) a second panel shows how the two measures agree."""
    import matplotlib.pyplot as plt

    stage_of = {e: s for s, ids in enumerate(stages) for e in ids}
    order = sorted(difficulty, key=lambda e: (difficulty[e], e))
    fig, axes = plt.subplots(1, 2 if like_gap else 1, figsize=(10 if like_gap else 5.5, 3.4), squeeze=False)
    ax = axes[0, 0]
    colors = plt.get_cmap("viridis")(np.linspace(0.1, 0.9, len(stages)))
    ax.bar(range(len(order)), [-difficulty[e] for e in order], color=[colors[stage_of[e]] for e in order])
    ax.set(
        xlabel="training event (easy → hard)",
        ylabel="RM gap, top vs bottom replies (std)",
        title="Curriculum: clarity of each event",
    )
    if like_gap:
        ax2 = axes[0, 1]
        ax2.scatter(
            [-like_gap[e] for e in order],
            [-difficulty[e] for e in order],
            c=[colors[stage_of[e]] for e in order],
            s=18,
        )
        ax2.set(
            xlabel="log1p(likes) gap top vs bottom replies", ylabel="RM gap", title="Two difficulty measures"
        )
    fig.tight_layout()
    return fig


EVAL_AXES = {
    "rm": ("reward-model score", "score (std units, 0 = average real reply)"),
    "rouge_lw": ("like-weighted ROUGE-L", "ROUGE-L F1 (0–1) vs top-liked replies"),
    "truth": ("true text popularity", "text part of log1p(likes)"),
    "kl": ("KL to SFT", "KL(policy ‖ SFT), nats per reply"),
}
"""Each metric's panel title and y-axis label (with its unit) in :func:`plot_eval`."""


def plot_eval(summary: pd.DataFrame, metrics: Sequence[str] = ("rm", "rouge_lw", "truth", "kl")):
    """One panel per metric: the models' means on held-out events with ± standard-error bars (over events). A
    model without a value (KL of the real replies: no policy wrote them) is marked "n/a", not drawn as 0."""
    import matplotlib.pyplot as plt

    metrics = [m for m in metrics if m in summary]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 3.3), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        values = summary[m].to_numpy(float)
        err = summary[m + " ±"].to_numpy(float) if m + " ±" in summary else np.zeros(len(values))
        missing = ~np.isfinite(values)
        ax.bar(
            range(len(summary)),
            np.where(missing, 0.0, values),
            yerr=np.where(np.isfinite(err), err, 0.0),
            capsize=3,
            color=plt.get_cmap("tab10")(np.arange(len(summary))),
        )
        for x in np.flatnonzero(missing):
            ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=8, color="dimgray")
        ax.axhline(0, color="black", lw=0.5)
        ax.set_xticks(range(len(summary)))
        ax.set_xticklabels(summary.index, rotation=20, fontsize=8)
        title, ylabel = EVAL_AXES.get(m, (m, m))
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=8)
    fig.suptitle("Held-out events: mean per model, ± standard error over events")
    fig.tight_layout()
    return fig


def paired_power(sd_diff: float, n: int, effect: float = 0.04, alpha: float = 0.05) -> float:
    """Power of a two-sided paired t-test over ``n`` held-out events to detect a mean difference ``effect``
    when the per-event differences have standard deviation ``sd_diff`` (noncentral t). Why: a difference
    "within noise" is only informative if the test could have seen the effect at all."""
    from scipy import stats

    if n < 2 or not sd_diff > 0:
        return float("nan")
    df, nc = n - 1, effect / (sd_diff / np.sqrt(n))
    t = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(t, df, nc) + stats.nct.cdf(-t, df, nc))


def events_needed(
    sd_diff: float, effect: float = 0.04, alpha: float = 0.05, power: float = 0.8, n_max: int = 1_000_000
) -> int:
    """The smallest number of held-out events at which :func:`paired_power` reaches ``power`` (``n_max`` + 1
    if none up to ``n_max`` does)."""
    lo, hi = 2, 2
    while paired_power(sd_diff, hi, effect, alpha) < power:
        if hi > n_max:
            return n_max + 1
        lo, hi = hi, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if paired_power(sd_diff, mid, effect, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return hi
