"""Baselines for cold-start popularity: the user's mean score, and gradient boosting on hand features.

Why these two: the world's (and SMPD's) popularity is dominated by the user's audience, so "predict the mean
of the user's earlier scores" is the bar any model must clear; and the SMP Challenge 2020 winners the paper
compares with (HyFea, USTC-CR) are CatBoost ensembles over hand features - user statistics, category, tags,
time, a sliding-window average of the user's scores. :class:`BoostingBaseline` is that family, compact:
sklearn's ``HistGradientBoostingRegressor`` (native categorical support and missing values, no CatBoost
dependency) on the features of :func:`example_features`, trained on the same train-form examples as the SFT.

Cross-dataset (§3.6): a TPIC-like frame lacks category, concept, title and tags; the paper fills missing
features with 0, we do the same for numbers (title length and tag count come from ``titlelen`` / ``tagcount``
when the text is absent) and an unseen category is "missing" to the booster.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .smp_llm import Example

CATEGORICAL = ("category", "subcategory", "concept")


def user_mean_predictions(examples: Sequence[Example]) -> np.ndarray:
    """The mean of each example's history scores (the cold-start prior; never fails, never constant)."""
    return np.array([float(np.mean(e.history_scores)) for e in examples])


def _num(value: Any, default: float = 0.0) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


def _title_len(row: pd.Series) -> float:
    title = str(row.get("title") or "")
    return float(len(title)) if title else _num(row.get("titlelen"))


def _tag_count(row: pd.Series) -> float:
    tags = row.get("tags")
    n = len(tags) if isinstance(tags, (list, tuple, np.ndarray)) else 0
    return float(n) if n else _num(row.get("tagcount"))


def example_features(
    df: pd.DataFrame, examples: Sequence[Example], use_user_avgview: bool = False
) -> pd.DataFrame:
    """One row of features per example (HyFea / USTC-CR style), from the frame the examples were built on.

    User: mean / std / min / max / last of the history scores, their trend, a sliding-window mean of the last
    two (USTC-CR), the number of history posts, the mean score of history posts in the new post's category.
    Post: category / subcategory / concept (categorical), tag count, title length, caption length, month (sin
    / cos), days since the previous post. ``use_user_avgview`` adds the profile's ``user_avgview`` - off by
    default because SMPD has no such field and the LLM's prompt does not show it.
    """
    rows = []
    for e in examples:
        hist = df.loc[e.history_index]
        q = df.loc[e.question_index]
        s = np.asarray(e.history_scores, dtype=float)
        same = [
            sc for (_, h), sc in zip(hist.iterrows(), s) if h["category"] and h["category"] == q["category"]
        ]
        prev_date, q_date = _num(hist["postdate"].iloc[-1], np.nan), _num(q["postdate"], np.nan)
        month = dt.datetime.fromtimestamp(q_date, tz=dt.timezone.utc).month if math.isfinite(q_date) else 0
        feats: dict[str, Any] = {
            "hist_mean": s.mean(),
            "hist_std": s.std(),
            "hist_min": s.min(),
            "hist_max": s.max(),
            "hist_last": s[-1],
            "hist_trend": s[-1] - s[0],
            "hist_window2": s[-2:].mean(),
            "n_hist": len(s),
            "same_cat_mean": float(np.mean(same)) if same else np.nan,
            "same_cat_n": len(same),
            "n_tags": _tag_count(q),
            "title_len": _title_len(q),
            "caption_len": float(len(str(q.get("image_caption") or ""))),
            "month_sin": math.sin(2 * math.pi * month / 12) if month else 0.0,
            "month_cos": math.cos(2 * math.pi * month / 12) if month else 0.0,
            "days_since_prev": (q_date - prev_date) / 86400 if math.isfinite(q_date + prev_date) else 0.0,
        }
        for c in CATEGORICAL:
            feats[c] = str(q.get(c) or "")
        if use_user_avgview:
            feats["user_avgview"] = _num(q.get("user_avgview"), np.nan)
        rows.append(feats)
    out = pd.DataFrame(rows)
    for c in CATEGORICAL:
        out[c] = out[c].replace("", np.nan)
    return out


@dataclass
class BoostingConfig:
    """``HistGradientBoostingRegressor`` settings for a few hundred training rows (shallow, regularised)."""

    max_iter: int = 300
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 10
    l2_regularization: float = 1.0
    loss: str = "absolute_error"  # the metric is MAE
    use_user_avgview: bool = False
    seed: int = 0


class BoostingBaseline:
    """Gradient boosting on :func:`example_features`; categories are learnt from the training frame, so a
    category the booster never saw (or a TPIC row without one) is treated as missing."""

    def __init__(self, cfg: BoostingConfig | None = None):
        self.cfg = cfg or BoostingConfig()
        self.categories: dict[str, list[str]] = {}
        self.model: Any = None
        self.columns: list[str] = []

    def _frame(self, df: pd.DataFrame, examples: Sequence[Example]) -> pd.DataFrame:
        x = example_features(df, examples, self.cfg.use_user_avgview)
        for c in CATEGORICAL:
            cats = self.categories.get(c, [])
            x[c] = pd.Categorical(x[c].where(x[c].isin(cats)), categories=cats)
        return x[self.columns] if self.columns else x

    def fit(self, df: pd.DataFrame, examples: Sequence[Example]) -> BoostingBaseline:
        from sklearn.ensemble import HistGradientBoostingRegressor

        raw = example_features(df, examples, self.cfg.use_user_avgview)
        self.categories = {c: sorted(raw[c].dropna().unique().tolist()) for c in CATEGORICAL}
        x = self._frame(df, examples)
        self.columns = list(x.columns)
        c = self.cfg
        self.model = HistGradientBoostingRegressor(
            loss=c.loss,
            max_iter=c.max_iter,
            learning_rate=c.learning_rate,
            max_leaf_nodes=c.max_leaf_nodes,
            min_samples_leaf=c.min_samples_leaf,
            l2_regularization=c.l2_regularization,
            categorical_features="from_dtype",
            random_state=c.seed,
        )
        self.model.fit(x, np.array([e.target for e in examples]))
        return self

    def predict(self, df: pd.DataFrame, examples: Sequence[Example]) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("BoostingBaseline.predict before fit")
        return self.model.predict(self._frame(df, examples))
