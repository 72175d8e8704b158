"""MultiSmpLLM evaluation: the paper's Table 5 (MAE / SRC per k-shot and method) with bootstrap intervals and
failure rates, the log-probability probes that show *why* IDPOP differs from DPO, and the figures.

Table cells follow the paper's conventions: "—" when a model gave no number for (almost) any test post, NaN
SRC when it gave the same number every time. Unlike the paper we also print the failure rate of every model,
because a model that answers 60% of the questions is not comparable with one that answers all of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .smp_llm import Example, bootstrap_ci, score_predictions
from .smp_llm_train import prompt_texts


@dataclass
class MethodResult:
    """One method's predictions on one test set (NaN = the answer was not a number) and raw answers."""

    name: str
    examples: list[Example]
    predictions: np.ndarray
    answers: list[str] = field(default_factory=list)

    def by_shot(self) -> dict[int, tuple[np.ndarray, np.ndarray, list[str]]]:
        out = {}
        for k in sorted({e.shots for e in self.examples}):
            idx = [i for i, e in enumerate(self.examples) if e.shots == k]
            out[k] = (
                np.array([self.examples[i].target for i in idx]),
                self.predictions[idx],
                [self.examples[i].uid for i in idx],
            )
        return out


def score_table(results: Sequence[MethodResult], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Long table: one row per (method, k) with MAE, SRC, their 95% bootstrap intervals (resampling test
    users), n, failures and failure rate."""
    rows = []
    for r in results:
        for k, (y, p, users) in r.by_shot().items():
            s = score_predictions(y, p)
            ci = (
                bootstrap_ci(y, p, users, n_boot=n_boot, seed=seed)
                if s.n_parsed >= 2
                else {"MAE": (math.nan, math.nan), "SRC": (math.nan, math.nan)}
            )
            rows.append(
                {
                    "method": r.name,
                    "shots": k,
                    "MAE": s.mae,
                    "MAE_lo": ci["MAE"][0],
                    "MAE_hi": ci["MAE"][1],
                    "SRC": s.src,
                    "SRC_lo": ci["SRC"][0],
                    "SRC_hi": ci["SRC"][1],
                    "n": s.n,
                    "failed": s.n_failed,
                    "failure_rate": s.failure_rate,
                    "constant": s.constant,
                }
            )
    return pd.DataFrame(rows)


def _fmt(v: float) -> str:
    return f"{v:.2f}" if abs(v) < 1000 else f"{v:.2g}"


def _cell(v: float, lo: float, hi: float, failed_all: bool) -> str:
    if failed_all:
        return "—"
    if math.isnan(v):
        return "NaN"
    return f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]" if not math.isnan(lo) else _fmt(v)


def table5(scores: pd.DataFrame, dash_above: float = 0.5) -> pd.DataFrame:
    """The paper's Table 5 layout: methods as rows, (k-shot, MAE / SRC / failed) as columns, cells
    "value [95% CI]", "NaN" SRC for constant predictions, and "—" for a model that failed to give a number
    for more than ``dash_above`` of the posts (the paper's "cannot answer"; the failure rate is always shown,
    and the exact numbers stay in ``scores``)."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for _, r in scores.iterrows():
        col = f"{int(r['shots'])}-shot"
        dash = r["failure_rate"] > dash_above or math.isnan(r["MAE"])
        out.setdefault((col, "MAE"), {})[r["method"]] = _cell(r["MAE"], r["MAE_lo"], r["MAE_hi"], dash)
        out.setdefault((col, "SRC"), {})[r["method"]] = _cell(r["SRC"], r["SRC_lo"], r["SRC_hi"], dash)
        out.setdefault((col, "failed"), {})[r["method"]] = f"{r['failure_rate']:.0%}"
    table = pd.DataFrame(out)
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table.loc[list(dict.fromkeys(scores["method"]))]


# --------------------------------------------------------------------------------------------------------
# Log-probability probes
# --------------------------------------------------------------------------------------------------------


@torch.no_grad()
def answer_logps(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    answers: Sequence[str],
    answer_end: str = "eos",
    batch_size: int = 32,
    progress: bool = False,
) -> np.ndarray:
    """Sequence log-probability ``log π(answer | prompt)`` (sum over the answer tokens and its end token), the
    quantity DPO and IDPOP move. ``answer_end`` must match training ("eos": the eos token; "chat": the
    template's ``<|im_end|>``)."""
    end = tokenizer.eos_token if answer_end == "eos" else "<|im_end|>"
    prompts = prompt_texts(tokenizer, examples)
    p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer([a + end for a in answers], add_special_tokens=False)["input_ids"]
    order = np.argsort([-(len(p) + len(a)) for p, a in zip(p_ids, a_ids)], kind="stable")  # less padding
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = np.zeros(len(examples))
    model.eval()
    for start in tqdm(range(0, len(examples), batch_size), desc="log-probs", disable=not progress):
        idx = order[start : start + batch_size]
        seqs = [p_ids[i] + a_ids[i] for i in idx]
        width = max(len(s) for s in seqs)
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
        logits = model(input_ids=ids, attention_mask=mask).logits
        for j, i in enumerate(idx):
            a, b = len(p_ids[i]), len(p_ids[i]) + len(a_ids[i])
            logp = torch.log_softmax(logits[j, a - 1 : b - 1].float(), -1)
            out[i] = logp.gather(-1, ids[j, a:b, None]).sum().item()
    return out


# --------------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------------


def _mae_axis_limit(
    scores: pd.DataFrame, outlier_factor: float = 10.0, headroom: float = 1.35
) -> float | None:
    """The MAE axis's top when some bars are off the scale of the rest, else None (autoscale).

    An outlier is an MAE above ``outlier_factor`` × the median MAE (the zero-shot base answers numbers of the
    wrong scale: MAE 75–245 beside 1–2 for every trained method); the axis then ends ``headroom`` × above the
    highest interval of the other bars, so their differences stay visible."""
    mae = scores["MAE"].to_numpy(float)
    finite = mae[np.isfinite(mae)]
    if len(finite) < 2:
        return None
    median = float(np.median(finite))
    inliers = scores[np.isfinite(mae) & (mae <= outlier_factor * max(median, 1e-9))]
    if len(inliers) == len(finite) or inliers.empty:
        return None
    top = np.nanmax(np.fmax(inliers["MAE"].to_numpy(float), inliers["MAE_hi"].to_numpy(float)))
    return float(top * headroom)


NO_ANSWER = "no answer"
CONSTANT = "n/a (constant)"


def plot_scores(
    scores: pd.DataFrame, title: str = "Cold-start popularity (world, SMPD-like)", dash_above: float = 0.5
) -> plt.Figure:
    """MAE and SRC per k-shot for every method, with 95% bootstrap intervals.

    Cells without a number are marked at 0 and explained under the panels, as in :func:`table5`: "no answer"
    when the model gave no number for more than ``dash_above`` of the posts (or none parsed), "n/a (constant)"
    when SRC is undefined because every prediction was the same number. An MAE far above the others (the
    zero-shot base's) would flatten every other bar: the axis stops above the rest (:func:`_mae_axis_limit`) and
    such a bar is drawn hatched to the edge with its value and interval written on it."""
    methods = list(dict.fromkeys(scores["method"]))
    shots = sorted(scores["shots"].unique())
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.9))
    width = 0.8 / max(1, len(methods))
    mae_top = _mae_axis_limit(scores)
    notes: set[str] = set()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes, ("MAE", "SRC")):
        top = mae_top if metric == "MAE" else None
        for i, m in enumerate(methods):
            sub = scores[scores["method"] == m].set_index("shots").reindex(shots)
            x = np.arange(len(shots)) + (i - (len(methods) - 1) / 2) * width
            v = sub[metric].to_numpy(float)
            lo, hi = sub[f"{metric}_lo"].to_numpy(float), sub[f"{metric}_hi"].to_numpy(float)
            failed = (sub["failure_rate"].to_numpy(float) > dash_above) | np.isnan(sub["MAE"].to_numpy(float))
            constant = (
                sub["constant"].fillna(False).to_numpy(bool) if "constant" in sub else np.zeros(len(v), bool)
            )
            off = np.isfinite(v) & (v > top) if top is not None else np.zeros(len(v), bool)
            shown = np.where(np.isfinite(v) & ~failed, np.where(off, top or 0.0, v), 0.0)
            err = np.vstack([shown - lo, hi - shown])
            err = np.where(np.isfinite(err) & ~off & ~failed & np.isfinite(v), np.abs(err), 0.0)
            color = colors[i % len(colors)]
            ax.bar(x, shown, width, yerr=err, capsize=2, label=m, color=color)
            for xi, vi, l_, h_, f_, c_, o_ in zip(x, v, lo, hi, failed, constant, off):
                if f_:
                    ax.text(
                        xi, 0, NO_ANSWER, rotation=90, ha="center", va="bottom", fontsize=6.5, color="dimgray"
                    )
                    notes.add(NO_ANSWER)
                elif np.isnan(vi):
                    label = CONSTANT if c_ or metric == "SRC" else "n/a"
                    ax.text(
                        xi, 0, label, rotation=90, ha="center", va="bottom", fontsize=6.5, color="dimgray"
                    )
                    notes.add(label)
                elif o_:
                    ax.bar(xi, top, width, color="none", edgecolor="white", hatch="///", lw=0)
                    ci = f" [{l_:.0f}, {h_:.0f}]" if np.isfinite(l_) else ""
                    ax.text(
                        xi,
                        top * 0.97,
                        f"{vi:.0f}{ci} ↑",
                        rotation=90,
                        ha="center",
                        va="top",
                        fontsize=6.5,
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
                    )
                    notes.add("off-scale")
        if top is not None:
            ax.set_ylim(0, top)
        ax.set_xticks(np.arange(len(shots)), [f"{k}-shot" for k in shots])
        ax.set_ylabel(
            metric + (" (log-views, lower is better)" if metric == "MAE" else " (Spearman, higher is better)")
        )
        ax.axhline(0, color="black", lw=0.5)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title)
    explain = {
        "off-scale": "hatched bar ↑: MAE beyond the axis (value [95% CI] written on it)",
        NO_ANSWER: f"{NO_ANSWER}: no number in more than {dash_above:.0%} of the answers",
        CONSTANT: f"{CONSTANT}: every prediction the same number, so Spearman is undefined",
        "n/a": "n/a: not computable",
    }
    if notes:
        fig.text(
            0.01,
            0.0,
            "   ·   ".join(explain[k] for k in explain if k in notes),
            fontsize=7.5,
            ha="left",
            va="top",
            color="dimgray",
        )
    fig.tight_layout()
    return fig


def plot_chosen_drift(
    drifts: Mapping[str, np.ndarray], title: str = "Does alignment lower π(y_w)?"
) -> plt.Figure:
    """Histogram of ``log π(y_w|x) - log π_ref(y_w|x)`` on the alignment pairs, per method: DPO's failure
    mode (§2.4.2) is mass below zero; IDPOP's penalty acts exactly there."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    values = [np.asarray(v) for v in drifts.values()]
    lo = min(float(v.min()) for v in values)
    hi = max(float(v.max()) for v in values)
    bins = np.linspace(lo, hi, 30) if hi > lo else 10
    for name, v in drifts.items():
        ax.hist(v, bins=bins, alpha=0.5, label=f"{name} (mean {np.mean(v):+.2f}, {np.mean(v < 0):.0%} < 0)")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("log π(y_w|x) − log π_ref(y_w|x)  (nats, per pair)")
    ax.set_ylabel("pairs")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_mu(w_gap: np.ndarray, mu: np.ndarray, title: str = "IDPOP's per-pair penalty weight") -> plt.Figure:
    """μ against W_chosen − W_rejected (eq. 14): near-ties get the strongest penalty (clamped)."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.scatter(w_gap, mu, s=10, alpha=0.6)
    ax.set_xlabel("W_c − W_r  (eq. 13 weight gap)")
    ax.set_ylabel("μ  (eq. 14, clamped)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_losses(
    histories: Mapping[str, Sequence[Mapping[str, float]]], title: str = "Training loss"
) -> plt.Figure:
    """Loss per logging step of each training run (SFT: answer-token cross-entropy; DPO / IDPOP: their
    loss)."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, hist in histories.items():
        steps = [h["step"] for h in hist if "loss" in h]
        ax.plot(steps, [h["loss"] for h in hist if "loss" in h], marker=".", label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------------
# Does the model read the history? (counterfactual probe)
# --------------------------------------------------------------------------------------------------------


def history_slope(
    predict: Any,
    frame: pd.DataFrame,
    cfg: Any,
    shots: Sequence[int] = (3,),
    values: tuple[float, float] = (4.0, 9.0),
) -> dict[str, float]:
    """How much a model's answer follows the history scores it is shown: every history score of every test
    prompt is set to ``values[0]``, then to ``values[1]`` (the posts' text stays), and the slope is
    (mean answer at values[1] − mean answer at values[0]) / (values[1] − values[0]).

    The per-user mean has slope 1; a model that ignores the scores - it answers one number for every post,
    or reads only the post's text - has slope 0. ``predict`` maps a list of :class:`Example` to float
    predictions (NaN = no number), e.g. ``lambda ex: predict_scores(model, tok, ex, greedy)[0]``. Returns the
    slope, the two mean answers and the share of answers that were numbers.
    """
    from .smp_llm import build_examples

    lo_v, hi_v = values
    means, parsed = [], []
    for v in values:
        ex = build_examples(frame.assign(popularity=float(v)), shots, "test", cfg)
        pred = np.asarray(predict(ex), dtype=float)
        means.append(float(np.nanmean(pred)) if np.isfinite(pred).any() else math.nan)
        parsed.append(float(np.isfinite(pred).mean()))
    return {
        "slope": (means[1] - means[0]) / (hi_v - lo_v),
        f"mean answer, history all {lo_v:g}": means[0],
        f"mean answer, history all {hi_v:g}": means[1],
        "parsed": min(parsed),
    }


def seed_ci(values: Sequence[float], alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean and t-interval over seeds (n ≥ 2; NaN bounds for one seed): the spread of independent runs, not
    of test users."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if len(v) < 2:
        return m, math.nan, math.nan
    half = float(stats.t.ppf(1 - alpha / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - half, m + half


def plot_preference_curves(
    curves: Mapping[str, Sequence[pd.DataFrame]],
    metrics: Sequence[tuple[str, str]] = (
        ("margin", "reward margin β·Δ (nats)"),
        ("accuracy", "preference accuracy"),
        ("chosen_reward", "β·log π(y_w)/π_ref(y_w)"),
    ),
    title: str = "Held-out preference pairs during alignment (mean and 95% CI over seeds)",
) -> plt.Figure:
    """One panel per metric of ``idpop.eval_curve`` on the held-out pairs, against the optimizer step; per
    method the mean over seeds with a shaded t-interval. Step 0 is the SFT model (margin 0, accuracy = ties
    counted as wrong)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4))
    for ax, (col, label) in zip(np.atleast_1d(axes), metrics):
        for name, runs in curves.items():
            table = pd.concat([r.set_index("step")[col].rename(i) for i, r in enumerate(runs)], axis=1)
            stats_ = [seed_ci(row) for row in table.to_numpy()]
            m = np.array([s[0] for s in stats_])
            lo = np.array([s[1] for s in stats_])
            hi = np.array([s[2] for s in stats_])
            ax.plot(table.index, m, marker=".", label=f"{name} ({len(runs)} seeds)")
            ax.fill_between(table.index, lo, hi, alpha=0.2)
        if col == "accuracy":
            ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        else:
            ax.axhline(0, color="grey", lw=0.8, ls="--")
        ax.set(xlabel="optimizer step", ylabel=label)
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def shot_mean_scores(examples: Sequence[Example], predictions: np.ndarray) -> dict[str, float]:
    """MAE, SRC and failure rate of one model, each averaged over the k-shot test sets (as the notebook's
    summary reads Table 5); SRC of a constant k-shot set is NaN and is skipped in the mean (NaN if all are)."""
    by = MethodResult("m", list(examples), np.asarray(predictions, dtype=float)).by_shot()
    s = [score_predictions(y, p) for y, p, _ in by.values()]
    srcs = [x.src for x in s if not math.isnan(x.src)]
    return {
        "MAE": float(np.mean([x.mae for x in s])),
        "SRC": float(np.mean(srcs)) if srcs else math.nan,
        "failure_rate": float(np.mean([x.failure_rate for x in s])),
    }
