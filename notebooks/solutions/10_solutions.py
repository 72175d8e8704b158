"""Solutions to the exercises of notebook 10 (real exports), on the committed export sample."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from socialalign_lib import crowds
from socialalign_lib.data.loaders.weibo import load_daily_posts
from socialalign_lib.paths import DATA_DIR
from socialalign_lib.sentiment import (
    EMOTIONS_TO_POLARITY,
    NgramLogRegLabeller,
    dedup_split,
    load_labelled_csv,
)

SAMPLE = DATA_DIR / "weibo_export_sample"


@lru_cache(maxsize=2)
def _labelled_crowds(drop_duplicates: bool, seed: int = 0):
    """Notebook 10's crowds (min 5 posts a hashtag), labelled by its honestly split labeller."""
    posts = crowds.posts_frame(load_daily_posts(sorted((SAMPLE / "daily").glob("*.csv"))))
    per_tag = crowds.hashtag_crowds(posts, min_posts=5)
    if drop_duplicates:
        per_tag = crowds.drop_duplicate_posts(per_tag, by=("hashtag", "day"))
    labelled = load_labelled_csv(SAMPLE / "emotions_labelled.csv", label_map=EMOTIONS_TO_POLARITY)
    train, test = dedup_split(labelled, test_size=0.3, seed=seed)
    labeller = NgramLogRegLabeller().fit(
        train["text"].tolist(), train["label"].tolist(), held_out=test["text"].tolist()
    )
    return (
        crowds.label_posts(per_tag, labeller),
        labeller.labels,
        per_tag.attrs.get("duplicates", 0),
        len(per_tag),
    )


def ex1_duplicates(size: str = "tiny", seed: int = 0) -> dict[str, float]:
    """Exercise 1 (predict): ``drop_duplicates=False``. How many more posts enter the crowds, and how far does the
    day-to-day JS move (largest change over hashtags and day pairs)? (Exactly the dropped copies come back — fewer
    once labelled, since copies without words are left out either way; a crowd with a copy-paste campaign shifts
    towards the campaign's label.)"""
    kept, labels, _, n_kept = _labelled_crowds(False, seed)
    deduped, _, dropped, n_deduped = _labelled_crowds(True, seed)
    js = {}
    for name, frame in (("kept", kept), ("deduped", deduped)):
        comp = crowds.compare_across(frame, labels=labels, n_boot=50, seed=seed, min_n=5)
        js[name] = np.concatenate([c["js"].to_numpy(dtype=float) for c in comp.values()])
    moved = np.abs(js["kept"] - js["deduped"])
    return {
        "crowd rows with duplicates": n_kept,
        "crowd rows without": n_deduped,
        "copies dropped": dropped,
        "labelled rows with duplicates": len(kept),
        "labelled rows without": len(deduped),
        "largest JS change (bits)": float(np.nanmax(moved)) if np.isfinite(moved).any() else 0.0,
    }


def my_js(counts_a, counts_b) -> float:
    """Exercise 2 (implement): Jensen-Shannon divergence in bits between two crowds given as label counts:
    ½ KL(p‖m) + ½ KL(q‖m), m = (p + q)/2, terms with p_k = 0 contributing 0."""
    p = np.asarray(counts_a, dtype=float) / np.sum(counts_a)
    q = np.asarray(counts_b, dtype=float) / np.sum(counts_b)
    m = (p + q) / 2

    def kl(x):
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return 0.5 * kl(p) + 0.5 * kl(q)


def ex2_js(size: str = "tiny", seed: int = 0) -> dict[str, float]:
    """Exercise 2: :func:`my_js` from the crowd counts of every (hashtag, day → next day) pair against
    ``crowds.compare_across``'s point estimates: the largest difference must be ~1e-12."""
    frame, labels, _, _ = _labelled_crowds(True, seed)
    comp = crowds.compare_across(frame, labels=labels, n_boot=20, seed=seed, min_n=5)
    worst, n = 0.0, 0
    for pair, table in comp.items():
        day_a, day_b = (d.strip() for d in pair.split("→"))
        for tag, row in table.iterrows():
            if row.get("missing") or not np.isfinite(row["js"]):
                continue
            counts = [
                [
                    int(((frame.hashtag == tag) & (frame.day == d) & (frame.sentiment == lab)).sum())
                    for lab in labels
                ]
                for d in (day_a, day_b)
            ]
            worst = max(worst, abs(my_js(*counts) - float(row["js"])))
            n += 1
    return {"max |mine - library|": worst, "pairs compared": n}
