"""Real crowds: compare the sentiment of *real* crowds with each other — per hashtag, per day — from exports.

The rest of ``crowd`` compares a generated crowd with the real one through the ``generated`` / ``reference``
columns of a replies frame. A researcher with a real export asks other questions first: did the public's mood about
``#油价今晚上调#`` change from Monday to Tuesday? Is the crowd of one hashtag angrier than another's? These
helpers answer them with the same labeller protocol, the same divergences and the same multinomial bootstrap
(``divergences.compare_crowds``), without that column convention:

1. :func:`posts_frame` — a loaded export (``loaders.load_daily_posts``) as one row per post, cleaned.
2. :func:`hashtag_crowds` — one row per (post, hashtag): the crowd of a hashtag (on a day).
3. :func:`drop_duplicate_posts` — optionally keep one copy of a text repeated inside a crowd (bots, copy-paste
   campaigns), counted.
4. :func:`label_posts` — the labeller's label per row; posts with no words are left out and counted.
5. :func:`crowd_table` / :func:`compare_across` / :func:`compare_real_crowds` — distributions, and JS / KL / TV
   with bootstrap CIs between two crowds of the same key (day A vs day B, hashtag by hashtag), keeping rows for
   crowds present on one side only (``missing`` column) so a figure can show them instead of hiding them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from socialalign_lib.data.schema import SENTIMENTS
from socialalign_lib.data.text import CleanConfig, clean_text

from .divergences import compare_crowds

if TYPE_CHECKING:
    from socialalign_lib.data.loaders.weibo import PostsCsv

    from ..sentiment import SentimentLabeller

__all__ = [
    "compare_across",
    "compare_real_crowds",
    "crowd_table",
    "drop_duplicate_posts",
    "hashtag_crowds",
    "label_posts",
    "posts_frame",
]


def posts_frame(data: PostsCsv, clean: CleanConfig | None = None) -> pd.DataFrame:
    """Every post of every user as a row: ``post_id, user_id, day, text, clean, hashtags``, users' histories in
    order. ``day`` is the date part of ``created_at`` (the file's day for daily exports). ``clean`` is the text
    after ``clean_text`` with ``clean`` (default ``CleanConfig()``: replacement marks, card titles, links go;
    hashtags stay, the labeller ignores them)."""
    cfg = clean or CleanConfig()
    rows = [
        (p.post_id, p.user_id, (p.created_at or "")[:10], p.text, clean_text(p.text, cfg), list(p.hashtags))
        for u in data.users
        for p in u.history
    ]
    return pd.DataFrame(rows, columns=["post_id", "user_id", "day", "text", "clean", "hashtags"])


def hashtag_crowds(
    posts: pd.DataFrame, hashtags: Sequence[str] | None = None, min_posts: int = 1
) -> pd.DataFrame:
    """One row per (post, hashtag) with a ``hashtag`` column: a post with two hashtags speaks in both crowds.
    ``hashtags`` keeps only those (in that order of categories); hashtags with fewer than ``min_posts`` posts
    overall are dropped. Posts without a hashtag belong to no crowd."""
    if "hashtags" not in posts.columns:
        raise ValueError(
            f"posts has no 'hashtags' column; columns are {list(posts.columns)} (see posts_frame)"
        )
    out = posts.explode("hashtags").rename(columns={"hashtags": "hashtag"})
    out = out[out["hashtag"].notna() & (out["hashtag"] != "")]
    if hashtags is not None:
        out = out[out["hashtag"].isin(list(hashtags))]
    sizes = out["hashtag"].value_counts()
    out = out[out["hashtag"].map(sizes) >= min_posts]
    return out.reset_index(drop=True)


def drop_duplicate_posts(
    crowds: pd.DataFrame,
    by: Sequence[str] = ("hashtag", "day"),
    text_col: str = "clean",
    per: Literal["crowd", "user"] = "crowd",
) -> pd.DataFrame:
    """Keep the first copy of each text inside each crowd (``by``): bot farms and copy-paste campaigns post one
    text many times, and each copy would count as one more person of that opinion. ``per="user"`` only drops a
    user's own repeats. Texts are compared as the labeller reads them (``sentiment.text_key``: hashtags,
    spacing and case ignored). ``attrs["duplicates"]`` holds the number of rows dropped."""
    from ..sentiment import text_key

    keys = [*by, *(["user_id"] if per == "user" else [])]
    missing = [c for c in [*keys, text_col] if c not in crowds.columns]
    if missing:
        raise ValueError(f"crowds has no column(s) {missing}; columns are {list(crowds.columns)}")
    tk = crowds[text_col].fillna("").astype(str).map(text_key)
    dup = pd.concat([crowds[keys], tk.rename("_key")], axis=1).duplicated()
    out = crowds[~dup].reset_index(drop=True)
    out.attrs = {**crowds.attrs, "duplicates": int(dup.sum())}
    return out


def label_posts(
    frame: pd.DataFrame,
    labeller: SentimentLabeller,
    text_col: str = "clean",
    label_col: str = "sentiment",
    no_words: Literal["exclude", "prior"] = "exclude",
) -> pd.DataFrame:
    """A copy of ``frame`` with ``label_col`` from ``labeller``. Posts with no words (empty, hashtags or
    replacement marks only) are left out with ``no_words="exclude"`` (default): a labeller would give them its
    prior, which tilts a crowd towards the majority training label. ``attrs["no_words"]`` counts them."""
    from ..sentiment import label_texts

    labels = label_texts(labeller, frame[text_col].fillna("").astype(str).tolist(), no_words)
    keep = np.array([lab is not None for lab in labels], dtype=bool)
    out = frame.assign(**{label_col: labels})[keep].reset_index(drop=True)
    out.attrs = {**frame.attrs, "no_words": int((~keep).sum())}
    return out


def crowd_table(
    labelled: pd.DataFrame,
    by: str | Sequence[str] = "hashtag",
    labels: Sequence[str] = SENTIMENTS,
    label_col: str = "sentiment",
) -> pd.DataFrame:
    """Share of each label per crowd (``by``: one column or several, e.g. ``["hashtag", "day"]``) plus ``n``;
    a label never seen in a crowd is 0. Unknown labels raise (they would silently shrink every share)."""
    by = [by] if isinstance(by, str) else list(by)
    unknown = sorted(set(labelled[label_col]) - set(labels))
    if unknown:
        raise ValueError(f"labels {unknown} are not in {list(labels)}")
    counts = (
        labelled.groupby(by)[label_col]
        .value_counts()
        .unstack(fill_value=0)
        .reindex(columns=list(labels), fill_value=0)
    )
    out = counts.div(counts.sum(axis=1), axis=0)
    out["n"] = counts.sum(axis=1)
    out.columns.name = None
    return out


def compare_real_crowds(
    a: pd.DataFrame,
    b: pd.DataFrame,
    key: str = "hashtag",
    labels: Sequence[str] = SENTIMENTS,
    label_col: str = "sentiment",
    n_boot: int = 1000,
    seed: int | None = 0,
    alpha: float = 0.05,
    min_n: int = 1,
) -> pd.DataFrame:
    """Two real crowds per ``key`` (e.g. the same hashtags on two days): one row per key with ``n_a, n_b``,
    ``a_<label>``, ``b_<label>``, ``js`` / ``kl`` (KL(a ‖ b)) / ``tv`` with ``_low`` / ``_high`` bootstrap CIs
    (both crowds resampled), and ``missing``: ``""``, ``"a"`` or ``"b"`` when that side has fewer than ``min_n``
    posts (its divergences are NaN, the row is kept so figures and tables show the gap)."""
    for name, df in (("a", a), ("b", b)):
        if key not in df.columns or label_col not in df.columns:
            raise ValueError(
                f"crowd {name} needs columns {key!r} and {label_col!r}; it has {list(df.columns)}"
            )
    size_a, size_b = a[key].value_counts(), b[key].value_counts()
    keys = sorted(set(size_a.index) | set(size_b.index), key=str)
    both = [k for k in keys if size_a.get(k, 0) >= min_n and size_b.get(k, 0) >= min_n]
    if both:
        cmp = compare_crowds(
            a[a[key].isin(both)],
            b[b[key].isin(both)],
            labels=labels,
            n_boot=n_boot,
            seed=seed,
            topic_col=key,
            label_col=label_col,
            alpha=alpha,
        )
        cmp = cmp.rename(
            columns=lambda c: {"n_real": "n_a", "n_pred": "n_b"}.get(
                c, "a_" + c[5:] if c.startswith("real_") else "b_" + c[5:] if c.startswith("pred_") else c
            )
        )
    else:
        cmp = pd.DataFrame(index=pd.Index([], name=key))
    out = cmp.reindex(pd.Index(keys, name=key))
    out["n_a"] = [int(size_a.get(k, 0)) for k in keys]
    out["n_b"] = [int(size_b.get(k, 0)) for k in keys]
    out["missing"] = ["" if k in both else ("a" if size_a.get(k, 0) < min_n else "b") for k in keys]
    return out


def compare_across(
    labelled: pd.DataFrame,
    across: str = "day",
    key: str = "hashtag",
    pairs: Literal["consecutive", "first"] | Sequence[tuple[str, str]] = "consecutive",
    labels: Sequence[str] = SENTIMENTS,
    label_col: str = "sentiment",
    n_boot: int = 1000,
    seed: int | None = 0,
    alpha: float = 0.05,
    min_n: int = 1,
) -> dict[str, pd.DataFrame]:
    """Per ``key`` (hashtag), the crowd at one value of ``across`` (day) against another: a
    :func:`compare_real_crowds` frame per pair, keyed ``"A → B"``. ``pairs``: ``"consecutive"`` (each day
    against the next), ``"first"`` (each later day against the first) or explicit ``(A, B)`` tuples. Crowds
    missing on one day keep their row (``missing``), so a hashtag that trended on one day only is visible."""
    values = sorted(labelled[across].dropna().unique(), key=str)
    if pairs == "consecutive":
        todo = list(zip(values[:-1], values[1:], strict=True))
    elif pairs == "first":
        todo = [(values[0], v) for v in values[1:]]
    else:
        todo = [tuple(p) for p in pairs]
    if not todo:
        warnings.warn(
            f"compare_across: fewer than two values of {across!r} ({values}); nothing to compare",
            stacklevel=2,
        )
    out = {}
    for i, (x, y) in enumerate(todo):
        seed_i = None if seed is None else seed + i
        out[f"{x} → {y}"] = compare_real_crowds(
            labelled[labelled[across] == x],
            labelled[labelled[across] == y],
            key=key,
            labels=labels,
            label_col=label_col,
            n_boot=n_boot,
            seed=seed_i,
            alpha=alpha,
            min_n=min_n,
        )
    return out
