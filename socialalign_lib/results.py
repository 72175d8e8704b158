"""The results table: every method scored the same way, micro and macro, per test split, with CIs and seeds.

Structure follows the SocialAlign paper's main table: rows = methods (base model zero-shot, plain LoRA, PAC-LoRA,
its ablations, the non-LLM category prior), columns = micro metrics (sentiment accuracy / macro-F1 of the
generated reply against the real one, ROUGE-1/2/L and BLEU on characters, distinct-1/2, length ratio, persona
consistency) and macro metrics (mean over topics of JS and KL(real ‖ pred), TV; on the embedded world also JS to
the *true* crowd). Unseen users (``test_user``) and unseen topics (``test_topic``) are reported separately:
they test different things (a new voice on familiar news; familiar voices on new news).

Every score is built from ``metrics`` and ``macro`` (nothing re-implemented here except a vectorised macro-F1 for
its bootstrap). The long format (:func:`evaluate_replies`, :func:`evaluate_crowd`) has one row per
``(method, split, seed, metric)`` with ``value``, ``low``, ``high`` (95% percentile bootstrap over replies, NaN
where a metric has no CI, e.g. corpus BLEU); :func:`results_table` averages seeds and pivots to the wide table;
:func:`save_results` writes the CSV and the rendered figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from socialalign_lib.crowd.baselines import BASELINE_ROWS, true_crowd
from socialalign_lib.crowd.distributions import PRED_COL, crowd_frames
from socialalign_lib.crowd.divergences import mean_divergences
from socialalign_lib.data.schema import SENTIMENTS

from . import metrics
from .plots import save_figure

__all__ = [
    "LOWER_IS_BETTER",
    "MACRO_METRICS",
    "METHOD_ORDER",
    "MICRO_METRICS",
    "SPLITS",
    "TABLE_METRICS",
    "evaluate_crowd",
    "evaluate_replies",
    "micro_metrics",
    "plot_metric_bars",
    "plot_results_table",
    "results_table",
    "save_results",
]

MICRO_METRICS: tuple[str, ...] = (
    "sent_acc",
    "sent_f1",
    "rouge-1",
    "rouge-2",
    "rouge-l",
    "bleu",
    "distinct-1",
    "distinct-2",
    "len_ratio",
    "persona",
)
MACRO_METRICS: tuple[str, ...] = ("js", "kl", "tv", "js_true")
LOWER_IS_BETTER: frozenset[str] = frozenset({"js", "kl", "tv", "js_true"})
TABLE_METRICS: tuple[str, ...] = (
    "sent_acc",
    "sent_f1",
    "rouge-l",
    "bleu",
    "distinct-2",
    "persona",
    "js",
    "js_true",
)
"""The columns the rendered figure shows (the CSV keeps every metric). KL is left out of the headline: the plug-in
KL(real ‖ pred) of crowds of a few dozen replies is dominated by labels a sampled crowd happens to miss (the ε
floor), and it ranks the oracle below smoother priors (see ``figures/06_results.csv`` for its values)."""
METHOD_ORDER: tuple[str, ...] = (
    "base (zero-shot)",
    "LoRA",
    "PAC-LoRA",
    "PAC-LoRA w/o persona",
    "PAC-LoRA w/o history",
    "PAC-LoRA uniform gates",
    *BASELINE_ROWS,
)
"""Row order of the table (methods not in this list follow, in order of appearance)."""
SPLITS: tuple[str, ...] = ("test_user", "test_topic")


# --------------------------------------------------------------------------------------------- micro
def _boot_mean(
    values: np.ndarray, n_boot: int, alpha: float, rng: np.random.Generator
) -> tuple[float, float]:
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    low, high = np.quantile(values[idx].mean(axis=1), [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _boot_macro_f1(
    gold: np.ndarray, pred: np.ndarray, k: int, n_boot: int, alpha: float, rng: np.random.Generator
) -> tuple[float, float]:
    """Bootstrap CI of macro-F1 (sklearn's definition, ``zero_division=0``), vectorised: per replicate and class,
    F1 = 2·TP / (2·TP + FP + FN), 0 when the class is absent from both gold and prediction."""
    idx = rng.integers(0, len(gold), size=(n_boot, len(gold)))
    g, p = np.eye(k)[gold[idx]], np.eye(k)[pred[idx]]  # [B, n, K]
    tp = (g * p).sum(axis=1)
    denom = g.sum(axis=1) + p.sum(axis=1)  # 2·TP + FP + FN
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0).mean(axis=1)
    low, high = np.quantile(f1, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _sentiment_rows(
    gold: Sequence[str],
    pred: Sequence[str],
    labels: list[str],
    n_boot: int,
    alpha: float,
    rng: np.random.Generator,
) -> list[dict[str, float]]:
    """``sent_acc`` and ``sent_f1`` rows with their bootstrap CIs (over replies)."""
    correct = np.array([g == p for g, p in zip(gold, pred)], dtype=float)
    gi, pi = np.array([labels.index(x) for x in gold]), np.array([labels.index(x) for x in pred])
    return [
        {
            "metric": "sent_acc",
            "value": metrics.accuracy(gold, pred, labels),
            **dict(zip(("low", "high"), _boot_mean(correct, n_boot, alpha, rng))),
        },
        {
            "metric": "sent_f1",
            "value": metrics.macro_f1(gold, pred, labels),
            **dict(zip(("low", "high"), _boot_macro_f1(gi, pi, len(labels), n_boot, alpha, rng))),
        },
    ]


def micro_metrics(
    labelled: pd.DataFrame,
    labels: Sequence[str] = SENTIMENTS,
    histories: Mapping[str, Sequence[str]] | None = None,
    gold_col: str = "sentiment",
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Micro metrics of one method's replies (a frame from ``macro.label_replies``), as rows
    ``{metric, value, low, high}``.

    * ``sent_acc`` / ``sent_f1``: the labeller's label of the generated reply vs ``gold_col`` (the real reply's
      own label: the world's truth, or on real data a human / labeller label), ``metrics.accuracy`` /
      ``metrics.macro_f1``.
    * ``rouge-1/2/l``: mean of ``metrics.rouge_f1`` on characters (generated vs its own real reply); ``bleu``:
      ``metrics.corpus_bleu`` (sacreBLEU ``zh``); ``distinct-1/2``: ``metrics.distinct_n`` over all replies;
      ``len_ratio``: ``metrics.length_ratio`` (1 = as long as the real replies).
    * ``persona``: mean ``metrics.persona_consistency`` against the user's history texts (``histories``:
      ``user_id → texts``); left out when ``histories`` is None.

    CIs (95% percentile bootstrap over replies) for accuracy, macro-F1, ROUGE and persona; corpus-level scores
    (BLEU, distinct, length ratio) are points (``low``/``high`` NaN).
    """
    _cols = ["generated", "reference", gold_col, PRED_COL]
    missing = [c for c in _cols if c not in labelled.columns]
    if missing:
        raise ValueError(f"labelled replies have no column(s) {missing} (run macro.label_replies first)")
    if len(labelled) == 0:
        raise ValueError("micro_metrics: no replies")
    labels = list(labels)
    rng = np.random.default_rng(seed)
    gen = labelled["generated"].fillna("").astype(str).tolist()
    ref = labelled["reference"].fillna("").astype(str).tolist()
    gold, pred = labelled[gold_col].astype(str).tolist(), labelled[PRED_COL].astype(str).tolist()
    nan = float("nan")
    rows = []

    rows += _sentiment_rows(gold, pred, labels, n_boot, alpha, rng)

    rouge = np.array(
        [
            [s[k] for k in metrics.ROUGE_KEYS]
            for s in (metrics.rouge_f1(h, r, "char") for h, r in zip(gen, ref))
        ]
    )  # [n, 3]
    for j, key in enumerate(metrics.ROUGE_KEYS):
        rows.append(
            {
                "metric": key,
                "value": float(rouge[:, j].mean()),
                **dict(zip(("low", "high"), _boot_mean(rouge[:, j], n_boot, alpha, rng))),
            }
        )
    nonempty = [(h, r) for h, r in zip(gen, ref) if h.strip()]
    bleu = metrics.corpus_bleu([h for h, _ in nonempty], [r for _, r in nonempty]) if nonempty else 0.0
    rows.append({"metric": "bleu", "value": bleu, "low": nan, "high": nan})
    rows.append({"metric": "distinct-1", "value": metrics.distinct_n(gen, 1), "low": nan, "high": nan})
    rows.append({"metric": "distinct-2", "value": metrics.distinct_n(gen, 2), "low": nan, "high": nan})
    rows.append({"metric": "len_ratio", "value": metrics.length_ratio(gen, ref), "low": nan, "high": nan})
    if histories is not None:
        if "user_id" not in labelled.columns:
            raise ValueError("persona consistency needs a user_id column")
        missing_users = sorted(set(labelled["user_id"]) - set(histories))
        if missing_users:
            raise KeyError(f"no history for user(s) {missing_users[:5]}")
        scores = np.array(
            [metrics.persona_consistency(h, histories[u]) for h, u in zip(gen, labelled["user_id"])]
        )
        rows.append(
            {
                "metric": "persona",
                "value": float(scores.mean()),
                **dict(zip(("low", "high"), _boot_mean(scores, n_boot, alpha, rng))),
            }
        )
    return rows


# --------------------------------------------------------------------------------------------- one method
def _macro_rows(
    real_df: pd.DataFrame,
    pred_df: pd.DataFrame,
    labels: Sequence[str],
    truth: pd.DataFrame | None,
    n_boot: int,
    alpha: float,
    seed: int,
) -> list[dict[str, float]]:
    div = mean_divergences(real_df, pred_df, labels, n_boot=n_boot, alpha=alpha, seed=seed)
    rows = [
        {"metric": m, "value": div[m], "low": div[f"{m}_low"], "high": div[f"{m}_high"]}
        for m in ("js", "kl", "tv")
    ]
    if truth is not None:
        t = mean_divergences(None, pred_df, labels, truth=truth, n_boot=n_boot, alpha=alpha, seed=seed)
        rows.append({"metric": "js_true", "value": t["js"], "low": t["js_low"], "high": t["js_high"]})
    return rows


def _long(method: str, split: str, seed: int, n: int, rows: list[dict[str, float]]) -> pd.DataFrame:
    out = pd.DataFrame(rows)
    out.insert(0, "method", method)
    out.insert(1, "split", split)
    out.insert(2, "seed", seed)
    out["n"] = n
    return out[["method", "split", "seed", "metric", "value", "low", "high", "n"]]


def evaluate_replies(
    method: str,
    labelled: pd.DataFrame,
    labels: Sequence[str] = SENTIMENTS,
    splits: Sequence[str] = SPLITS,
    histories: Mapping[str, Sequence[str]] | None = None,
    world=None,
    real: str = "labeller",
    seed: int = 0,
    n_boot: int = 1000,
    alpha: float = 0.05,
    gold_col: str = "sentiment",
) -> pd.DataFrame:
    """All metrics of one method's labelled replies, per split, in the long format.

    Micro sentiment scores compare with ``gold_col`` (the dataset's label; on unlabelled real data pass
    ``macro.REAL_COL``, the labeller's label of the real reply). Macro: the real crowd is labelled as ``real`` says
    (``macro.crowd_frames``); ``world`` (the embedded world)
    adds ``js_true``, the mean JS to the true expected crowd over the same users. ``seed`` is recorded in the rows
    *and* seeds the bootstrap, so a rerun reproduces the CIs.
    """
    if "split" not in labelled.columns:
        raise ValueError("labelled replies have no 'split' column")
    parts = []
    for split in splits:
        sub = labelled[labelled["split"] == split]
        if len(sub) == 0:
            raise ValueError(f"method {method!r}: no replies in split {split!r}")
        rows = micro_metrics(sub, labels, histories, gold_col=gold_col, n_boot=n_boot, alpha=alpha, seed=seed)
        real_df, pred_df = crowd_frames(sub, real, gold_col=gold_col)
        truth = true_crowd(world, sub) if world is not None else None
        rows += _macro_rows(real_df, pred_df, labels, truth, n_boot, alpha, seed)
        parts.append(_long(method, split, seed, len(sub), rows))
    return pd.concat(parts, ignore_index=True)


def evaluate_crowd(
    method: str,
    real_df: pd.DataFrame,
    pred_df: pd.DataFrame,
    split: str,
    labels: Sequence[str] = SENTIMENTS,
    truth: pd.DataFrame | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Macro metrics only, for a method that predicts a crowd but writes no replies (the category prior, the
    oracle): rows in the long format of :func:`evaluate_replies`; micro metrics are absent (shown as "—")."""
    rows = _macro_rows(real_df, pred_df, labels, truth, n_boot, alpha, seed)
    return _long(method, split, seed, len(real_df), rows)


def evaluate_labels(
    method: str,
    labelled: pd.DataFrame,
    pred: Sequence[str | None],
    labels: Sequence[str] = SENTIMENTS,
    splits: Sequence[str] = SPLITS,
    world=None,
    real: str = "labeller",
    seed: int = 0,
    n_boot: int = 1000,
    alpha: float = 0.05,
    gold_col: str = "sentiment",
) -> pd.DataFrame:
    """Sentiment accuracy / macro-F1 and the macro metrics of a label predictor (``baselines``): ``pred`` holds one
    label per row of ``labelled`` (the same evaluation cases as the LLM rows, whose real crowd is reused). Rows
    whose prediction is None are left out (e.g. the topic's training crowd on unseen topics); a split left empty
    is skipped. Text metrics do not apply (shown as "—")."""
    if len(pred) != len(labelled):
        raise ValueError(f"{method}: {len(pred)} predictions for {len(labelled)} rows")
    frame = labelled.copy()
    frame[PRED_COL] = list(pred)
    frame = frame[frame[PRED_COL].notna()]
    labels = list(labels)
    parts = []
    for split in splits:
        sub = frame[frame["split"] == split]
        if len(sub) == 0:
            continue
        rng = np.random.default_rng(seed)
        rows = _sentiment_rows(
            sub[gold_col].astype(str).tolist(), sub[PRED_COL].astype(str).tolist(), labels, n_boot, alpha, rng
        )
        real_df, pred_df = crowd_frames(sub, real, gold_col=gold_col)
        truth = true_crowd(world, sub) if world is not None else None
        rows += _macro_rows(real_df, pred_df, labels, truth, n_boot, alpha, seed)
        parts.append(_long(method, split, seed, len(sub), rows))
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------------------------- the table
def _method_order(methods: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(methods))
    return [m for m in METHOD_ORDER if m in seen] + [m for m in seen if m not in METHOD_ORDER]


def results_table(
    long: pd.DataFrame, splits: Sequence[str] | None = None, metrics_: Sequence[str] | None = None
) -> pd.DataFrame:
    """Wide table: one row per method (in :data:`METHOD_ORDER`), columns ``(split, metric, stat)`` with stat in
    ``value`` / ``low`` / ``high`` / ``seed_sd``, plus a ``seeds`` column ("0,1,2").

    Seeds: ``value``, ``low`` and ``high`` are means over the seeds a method was run with; ``seed_sd`` is the
    standard deviation of ``value`` across seeds (NaN for one seed). A metric a method lacks stays NaN.
    """
    need = {"method", "split", "seed", "metric", "value", "low", "high"}
    if not need <= set(long.columns):
        raise ValueError(f"long results need columns {sorted(need)}, got {list(long.columns)}")
    splits = (
        list(splits)
        if splits is not None
        else [s for s in SPLITS if s in set(long["split"])] + sorted(set(long["split"]) - set(SPLITS))
    )
    known = [m for m in (*MICRO_METRICS, *MACRO_METRICS) if m in set(long["metric"])]
    metrics_ = list(metrics_) if metrics_ is not None else known + sorted(set(long["metric"]) - set(known))
    g = long.groupby(["method", "split", "metric"])
    agg = pd.DataFrame(
        {
            "value": g["value"].mean(),
            "low": g["low"].mean(),
            "high": g["high"].mean(),
            "seed_sd": g["value"].std(ddof=1),
        }
    )
    wide = agg.unstack(["split", "metric"])  # columns (stat, split, metric)
    wide.columns = wide.columns.reorder_levels([1, 2, 0])
    cols = pd.MultiIndex.from_product(
        [splits, metrics_, ["value", "low", "high", "seed_sd"]], names=["split", "metric", "stat"]
    )
    wide = wide.reindex(index=_method_order(long["method"]), columns=cols)
    wide.index.name = "method"
    seeds = long.groupby("method")["seed"].agg(lambda s: ",".join(str(x) for x in sorted(set(s))))
    wide[("", "", "seeds")] = seeds.reindex(wide.index)
    return wide


def _flat(wide: pd.DataFrame) -> pd.DataFrame:
    out = wide.copy()
    out.columns = [
        "seeds" if c[2] == "seeds" else f"{c[0]}/{c[1]}" + ("" if c[2] == "value" else f"_{c[2]}")
        for c in wide.columns
    ]
    return out


def _best(values: pd.Series, metric: str) -> set[str]:
    v = values.dropna()
    if v.empty:
        return set()
    if metric == "len_ratio":
        d = (v - 1).abs()
        return set(d[d == d.min()].index)
    target = v.min() if metric in LOWER_IS_BETTER else v.max()
    return set(v[np.isclose(v, target)].index)


def _n_seeds(ids: object) -> str:
    """How many seeds a ``seeds`` cell ("0,1,2") lists, as table text ("—" for none)."""
    n = len([x for x in str(ids).split(",") if x.strip()]) if isinstance(ids, str) else 0
    return str(n) if n else "—"


def plot_results_table(
    wide: pd.DataFrame,
    metrics_: Sequence[str] = TABLE_METRICS,
    title: str = "",
    reference_rows: Sequence[str] = ("oracle (true p(s|u,t))",),
    best: Mapping[tuple[str, str], set[str]] | None = None,
) -> plt.Figure:
    """Render the wide table as a figure: one block per split, cells "value [low, high]" (3 decimals), "—" where a
    method has no such metric, the number of seeds averaged in the last column (``n_seeds``; the seed ids are in
    the CSV's ``seeds`` column: a lone seed id "0" in a figure read as "0 seeds"); the best value per column (ignoring
    ``reference_rows``, e.g. the oracle) shaded green. Arrows in the header say which direction is better.
    ``best``: ``{(split, metric): methods}`` to shade instead (e.g. only where ``comparisons.paired_best`` separated
    the best from the runner-up); a (split, metric) absent from it shades nothing."""
    splits = [s for s in dict.fromkeys(wide.columns.get_level_values(0)) if s]
    metrics_ = [m for m in metrics_ if any((s, m, "value") in wide.columns for s in splits)]
    header = (
        ["method"]
        + [f"{m} {'↓' if m in LOWER_IS_BETTER else ('≈1' if m == 'len_ratio' else '↑')}" for m in metrics_]
        + ["n_seeds"]
    )
    seeds = wide[("", "", "seeds")] if ("", "", "seeds") in wide.columns else pd.Series("", index=wide.index)
    fig, axes = plt.subplots(
        len(splits), 1, figsize=(1.45 * len(metrics_) + 3.4, (0.42 * len(wide) + 0.8) * len(splits))
    )
    for ax, split in zip(np.atleast_1d(axes), splits):
        ax.axis("off")
        cells, best_cells = [], []
        if best is not None:
            marks = {m: set(best.get((split, m), set())) for m in metrics_}
        else:
            marks = {
                m: _best(wide[(split, m, "value")].drop(list(reference_rows), errors="ignore"), m)
                if (split, m, "value") in wide.columns
                else set()
                for m in metrics_
            }
        for method in wide.index:
            row = [method]
            for m in metrics_:
                if (split, m, "value") not in wide.columns or pd.isna(wide.loc[method, (split, m, "value")]):
                    row.append("—")
                    continue
                v, lo, hi = (wide.loc[method, (split, m, s)] for s in ("value", "low", "high"))
                row.append(f"{v:.3f}" + ("" if pd.isna(lo) else f"\n[{lo:.3f}, {hi:.3f}]"))
                if method in marks[m]:
                    best_cells.append((len(cells) + 1, len(row) - 1))
            cells.append([*row, _n_seeds(seeds.get(method, ""))])
        table = ax.table(cellText=cells, colLabels=header, cellLoc="center", bbox=[0.0, 0.0, 1.0, 1.0])
        table.auto_set_font_size(False)
        table.set_fontsize(7)
        for (r, c), cell in table.get_celld().items():
            if r == 0:
                cell.set_facecolor("#e8e8e8")
            elif (r, c) in best_cells:
                cell.set_facecolor("#cdebc5")
        ax.set_title(split, fontsize=9)
    if best is None:
        shading = "green = best"
    elif any(best.values()):
        shading = "green = best, separated from the runner-up by a paired test"
    else:
        shading = "no green: in no column does a paired test separate the best from the runner-up"
    fig.suptitle(
        title or f"Results: micro metrics and macro divergences (95% bootstrap CI; {shading})", fontsize=10
    )
    fig.tight_layout()
    return fig


def plot_metric_bars(wide: pd.DataFrame, metric: str = "js", title: str = "") -> plt.Figure:
    """One panel per split: each method's ``metric`` (mean over seeds) as a horizontal bar with its 95% CI, methods
    in table order, so a reader sees at a glance which differences are larger than the intervals."""
    splits = [
        s
        for s in dict.fromkeys(wide.columns.get_level_values(0))
        if s and (s, metric, "value") in wide.columns
    ]
    if not splits:
        raise ValueError(f"the table has no metric {metric!r}")
    fig, axes = plt.subplots(
        1, len(splits), figsize=(4.2 * len(splits) + 1.5, 0.38 * len(wide) + 1.3), sharey=True
    )
    for ax, split in zip(np.atleast_1d(axes), splits):
        v, lo, hi = (wide[(split, metric, s)].to_numpy(float) for s in ("value", "low", "high"))
        y = np.arange(len(wide))
        err = np.vstack([v - lo, hi - v])
        ok = ~np.isnan(v)
        ax.barh(y[ok], v[ok], color="#4c72b0", alpha=0.8)
        ax.errorbar(
            v[ok], y[ok], xerr=np.nan_to_num(err[:, ok]).clip(0), fmt="none", ecolor="black", capsize=3, lw=1
        )
        ax.set_yticks(y)
        ax.set_yticklabels(list(wide.index))
        ax.invert_yaxis()
        ax.set_title(split, fontsize=9)
        ax.set_xlabel(f"{metric} ({'lower' if metric in LOWER_IS_BETTER else 'higher'} is better)")
    fig.suptitle(title or f"{metric} per method (mean over topics; 95% bootstrap CI)", fontsize=10)
    fig.tight_layout()
    return fig


def save_results(
    wide: pd.DataFrame,
    name: str,
    figures_dir: str | Path | None = None,
    title: str = "",
    best: Mapping[tuple[str, str], set[str]] | None = None,
) -> tuple[Path, Path]:
    """Write ``<name>.csv`` (flat numeric columns ``<split>/<metric>[_low|_high|_seed_sd]`` and ``seeds``) and
    ``<name>.png`` (:func:`plot_results_table`, ``best`` as there) into ``figures_dir``; return both paths."""
    fig = plot_results_table(wide, title=title, best=best)
    png = save_figure(fig, name, figures_dir)
    plt.close(fig)
    csv = png.with_suffix(".csv")
    _flat(wide).to_csv(csv, float_format="%.6g")
    return csv, png
