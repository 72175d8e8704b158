"""Solutions to the exercises of notebook 09 (NARRATOR): feature ablations at the tiny size (2 epochs, ~250
posts, one seed — enough to run the code path; read the numbers at the course size)."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np
import pandas as pd
import torch

from socialalign_lib.popularity.narrator import (
    NarratorConfig,
    TrainConfig,
    predict,
    regression_metrics,
    run_ablations,
    split_indices,
    subset,
)
from socialalign_lib.popularity.narrator_features import (
    CharTextEncoder,
    FeatureConfig,
    encode_posts,
    prepare_posts,
    truth_sentiment,
)
from socialalign_lib.world import generate_world

N_SMP_USERS = {"tiny": 60, "course": 1000, "large": 3000}


@lru_cache(maxsize=2)
def _data(size: str, seed: int):
    world = generate_world(size=size, seed=seed, n_smp_users=N_SMP_USERS[size])
    posts = prepare_posts(pd.DataFrame(world.smp_posts))
    encoder = CharTextEncoder.fit(posts)
    data = encode_posts(posts, encoder, FeatureConfig(), truth_sentiment(posts), image_dim=16)
    base = NarratorConfig(text_dim=encoder.dim, text_kind=encoder.kind, image_dim=data["image"].shape[-1])
    return data, base


def _tcfg(size: str) -> TrainConfig:
    return TrainConfig(epochs=2 if size == "tiny" else 15, progress=False)


def ex1_new_ablation(size: str = "tiny", seed: int = 0) -> pd.DataFrame:
    """Exercise 1 (a new ablation row): NARRATOR without image *and* demographics — only text, hashtags, sentiment
    and context — next to the full model and the two single ablations, on one seed. Predict first: is the joint
    loss larger than the sum of the two single losses? (At course size demographics cost most; the image matters
    only for the background-object cases, so the joint row is close to "w/o demographics".)"""
    data, base = _data(size, seed)
    variants = {
        "NARRATOR (full)": {},
        "w/o image": {"use_image": False},
        "w/o demographics": {"use_demographics": False},
        "w/o image and demographics": {"use_image": False, "use_demographics": False},
    }
    res = run_ablations(base, data, seeds=[seed], variants=variants, tcfg=_tcfg(size), baseline=False)
    out = res.set_index("variant")[["test_mse", "test_src"]]
    out["Δmse vs full"] = out["test_mse"] - out.loc["NARRATOR (full)", "test_mse"]
    return out


def permutation_importance(model, batch, keys: tuple[str, ...], seed: int = 0) -> float:
    """Exercise 2 (implement): rise of test MSE when the tensors ``keys`` are shuffled across posts (one shared
    permutation), breaking their link with the rest of each post. An input the model does not use costs 0."""
    y = batch["y"].numpy()
    before = regression_metrics(predict(model, batch), y)["mse"]
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(y)))
    shuffled = {k: (v[perm] if k in keys else v) for k, v in batch.items()}
    return regression_metrics(predict(model, shuffled), y)["mse"] - before


def ex2_permutation(size: str = "tiny", seed: int = 0) -> dict[str, float]:
    """Exercise 2: permutation importance of the demographics for the full model and for the model trained
    without them (which must be exactly 0: a check that the ablation really removes the input)."""
    from socialalign_lib.popularity.narrator import train_narrator

    data, base = _data(size, seed)
    tr, va, te = (subset(data, i) for i in split_indices(len(data["y"]), seed))
    out = {}
    for name, over in (("full", {}), ("w/o demographics", {"use_demographics": False})):
        model, _ = train_narrator(replace(base, **over), tr, va, replace(_tcfg(size), seed=seed))
        out[f"{name}: MSE rise, demographics shuffled"] = permutation_importance(model, te, ("demo",), seed)
    return out
