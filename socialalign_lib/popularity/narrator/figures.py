"""NARRATOR's figures: where each hashtag's query looks (text characters and image regions) and the ablation
results with their confidence intervals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .experiments import mean_ci
from .model import Batch, NarratorModel
from .train import subset


@torch.no_grad()
def match_scores(model: NarratorModel, batch: Batch, batch_size: int = 1024) -> np.ndarray:
    """``[n, n_modalities]`` best hashtag–content match per post (text, then image): what the head reads as
    "does the content show what the hashtags claim". Only for ``guidance="hashtag"``; 0 without hashtags."""
    if model.cfg.guidance != "hashtag":
        raise ValueError("match scores exist only with hashtag guidance")
    model.eval()
    out = []
    for s in range(0, len(batch["y"]), batch_size):
        model(subset(batch, slice(s, s + batch_size), model.y_mu.device))
        out.append(model.last_best.cpu())
    return torch.cat(out).numpy()


@torch.no_grad()
def attention_maps(model: NarratorModel, batch: Batch, index: int) -> dict[str, np.ndarray]:
    """For post ``index``: ``weights [Q, N]`` over its keys, with ``text`` / ``image`` column ranges."""
    model.eval()
    model(subset(batch, slice(index, index + 1)))
    w = model.last_weights[0].numpy()
    k = model.last_keys
    return {"weights": w, "n_text": k["n_text"], "n_image": k["n_image"]}


def plot_hashtag_attention(
    model: NarratorModel,
    batch: Batch,
    posts: Sequence[Mapping],
    encoder,
    indices: Sequence[int],
    text_len: int = 48,
    max_chars: int = 36,
    themes: Mapping[str, np.ndarray] | None = None,
):
    """One row per post: the weights each hashtag's query puts on the text characters (left, first ``max_chars``)
    and on the image regions (right); each side sums to 1 per hashtag. ``posts[i]`` is the raw post (hashtag
    names, title; the world's truth when present). With the world's concept ``themes``, the region that shows the
    post's subject is marked ``*`` (the model never sees that label)."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from socialalign_lib import plots  # noqa: F401, PLC0415 - registers the CJK font (hashtags are Chinese)

    from ..narrator_features import post_text  # noqa: PLC0415

    n_img = model.cfg.use_image
    fig, axes = plt.subplots(
        len(indices),
        2 if n_img else 1,
        figsize=(12, 0.4 + 1.45 * len(indices)),
        squeeze=False,
        gridspec_kw={"width_ratios": [7, 1] if n_img else [1]},
    )
    for row, i in enumerate(indices):
        m = attention_maps(model, batch, i)
        post = posts[i]
        tokens = encoder.tokens(post_text(post), text_len)
        n_tok = min(len(tokens), max_chars, m["n_text"])
        tags = [str(h) for h in list(post.get("hashtags") or [])][: m["weights"].shape[0]]
        guided = bool(tags) and model.cfg.guidance == "hashtag"
        rows = list(range(len(tags))) if guided else [0]
        ylabels = [f"#{t}#" for t in tags] if guided else ["(generic query)"]
        ax = axes[row, 0]
        ax.imshow(m["weights"][np.ix_(rows, range(n_tok))], aspect="auto", cmap="viridis", vmin=0)
        ax.set_xticks(range(n_tok), tokens[:n_tok], fontsize=7)
        ax.set_yticks(range(len(ylabels)), ylabels, fontsize=8)
        truth = post.get("truth") or {}
        ax.set_title(
            f"post {post.get('pid', i)}: popularity {float(post.get('popularity', float('nan'))):.2f}"
            + (f", true hashtag–image alignment {truth['align']:.2f}" if "align" in truth else ""),
            fontsize=9,
            loc="left",
        )
        if n_img:
            ax = axes[row, 1]
            ax.imshow(
                m["weights"][np.ix_(rows, range(m["n_text"], m["n_text"] + m["n_image"]))],
                aspect="auto",
                cmap="magma",
                vmin=0,
                vmax=1,
            )
            labels = [f"R{r}" for r in range(m["n_image"])]
            regions = post.get("image_regions")
            if themes is not None and post.get("concept") in themes and regions is not None and len(regions):
                sims = np.asarray(regions, dtype=float) @ themes[post["concept"]]
                labels[int(np.argmax(sims))] += "*"
            ax.set_xticks(range(len(labels)), labels, fontsize=8)
            ax.set_yticks([])
    axes[-1, 0].set_xlabel("text characters (title · caption · tags)")
    if n_img:
        axes[-1, 1].set_xlabel("image regions (* = subject)")
    fig.suptitle("Hashtag-guided attention: where each hashtag looks (each side sums to 1 per hashtag)")
    fig.tight_layout()
    return fig


def plot_ablation_results(
    results: pd.DataFrame, metric: str = "test_mse", reference: str = "NARRATOR (full)"
):
    """Mean ± 95% CI of ``metric`` per variant over seeds (one dot per seed), the reference highlighted."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = list(dict.fromkeys(results["variant"]))
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * len(names)))
    for k, name in enumerate(names):
        v = results.loc[results.variant == name, metric].to_numpy(dtype=float)
        mu, ci = mean_ci(v)
        color = "#c44e52" if name == reference else "#4c72b0"
        ax.barh(k, mu, xerr=ci, color=color, alpha=0.8, capsize=3)
        ax.scatter(v, np.full(len(v), k), color="black", s=10, zorder=3)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    label = ("held-out " if metric.startswith("test_") else "") + metric.split("_")[-1].upper()
    ax.set(xlabel=f"{label} (mean ± 95% CI over seeds; dots: seeds)", title="NARRATOR and its ablations")
    fig.tight_layout()
    return fig
