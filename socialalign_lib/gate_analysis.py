"""Which expert does each news and each user use? Gate statistics and heatmaps for PAC-LoRA.

Input: a frame with one row per record and list columns ``gate_a`` / ``gate_b`` (``generate.decode.compute_gates``
or ``generate_replies``). Gate A (analyzing experts) is computed from the news span, gate B (writing
experts) from the user span, so the questions are "does gate A depend on the news' category?" and "does gate B
depend on the kind of user?".

The statistic is eta² = between-group / total sum of squares of the gate vectors (0: every group has the same mean
gate, 1: the gate is a function of the group). Its null is **not** "shuffle the rows": all replies to one topic
share its news, so their gate A values are nearly equal, and a row-level shuffle would credit any topic-to-topic
variation to the category. :func:`gate_separation` permutes the labels of whole *clusters* instead (topics for
gate A, users for gate B) — the categories of the topics are shuffled, keeping which rows belong to a topic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

SIDES: dict[str, str] = {
    "gate_a": "gate A (analyzing experts, from the news)",
    "gate_b": "gate B (writing experts, from the user)",
}
PERSONA_ATTRIBUTES: tuple[str, ...] = (
    "archetype",
    "emotional_baseline",
    "personality",
    "top_interest",
    "length_class",
    "contrarian",
)


def gate_matrix(frame: pd.DataFrame, side: str) -> np.ndarray:
    """``[rows, n_experts]`` array of the list column ``side`` (``"gate_a"`` or ``"gate_b"``)."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {list(SIDES)}, got {side!r}")
    if side not in frame.columns:
        raise ValueError(f"frame has no column {side!r}; columns are {list(frame.columns)}")
    values = frame[side].tolist()
    if not values or any(len(v) == 0 for v in values):
        raise ValueError(f"column {side!r} has empty gate lists: gates exist for PAC-LoRA models only")
    return np.asarray(values, dtype=float)


def persona_types(world, attribute: str = "archetype") -> dict[str, str]:
    """``user_id → type`` from the world's latent truth: ``archetype`` (values type, 9 kinds),
    ``emotional_baseline`` (pessimist / even / optimist), ``personality``, ``top_interest`` (the category a user
    follows most), ``length_class`` or ``contrarian``."""
    if attribute not in PERSONA_ATTRIBUTES:
        raise ValueError(f"attribute must be one of {PERSONA_ATTRIBUTES}, got {attribute!r}")
    out = {}
    for uid, lu in world.latent_users.items():
        out[uid] = lu.top_interests(1)[0] if attribute == "top_interest" else str(getattr(lu, attribute))
    return out


def mean_gates_by(frame: pd.DataFrame, side: str, by: str | Sequence[str] | pd.Series) -> pd.DataFrame:
    """Mean gate vector per group: rows = groups (with their row count ``n``), columns ``expert 1..n``."""
    gates = gate_matrix(frame, side)
    groups = frame[by].to_numpy() if isinstance(by, str) else np.asarray(by)
    table = pd.DataFrame(gates, columns=[f"expert {i + 1}" for i in range(gates.shape[1])])
    table["group"] = groups
    means = table.groupby("group").mean()
    means.insert(0, "n", table.groupby("group").size())
    return means


def eta_squared(gates: np.ndarray, groups: np.ndarray) -> float:
    """Between-group share of the total sum of squares of ``gates [rows, n]`` grouped by ``groups [rows]``."""
    centred = gates - gates.mean(axis=0)
    total = float((centred**2).sum())
    if total <= 1e-12 * gates.size:  # constant gates (up to float rounding): nothing to separate
        return 0.0
    between = 0.0
    for g in np.unique(groups):
        member = groups == g
        between += member.sum() * float(((gates[member].mean(axis=0) - gates.mean(axis=0)) ** 2).sum())
    return between / total


@dataclass
class GateSeparation:
    """Result of :func:`gate_separation`.

    Attributes:
        eta2: observed eta².
        null_mean, null_q95: mean and 95th percentile of eta² under cluster-level label permutations.
        p_value: ``(1 + #{null >= eta2}) / (1 + permutations)``.
        excess: ``eta2 / null_mean`` (how many times the chance level; inf when the null is 0).
        spread: mean over rows of the largest minus the smallest expert weight (0 = uniform gates).
        n_groups, n_clusters: numbers of groups and of permuted clusters.
    """

    eta2: float
    null_mean: float
    null_q95: float
    p_value: float
    excess: float
    spread: float
    n_groups: int
    n_clusters: int

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def gate_separation(
    frame: pd.DataFrame, side: str, group: str, cluster: str, permutations: int = 999, seed: int = 0
) -> GateSeparation:
    """Does ``side``'s gate differ between the groups in column ``group`` more than chance?

    Each cluster (value of column ``cluster``, e.g. ``topic_id``) must carry one group (e.g. its ``category``);
    the permutation null shuffles the groups among the clusters and recomputes eta², so rows that share a cluster
    stay together (see the module docstring).

    Raises:
        ValueError: a cluster with several groups.
    """
    gates = gate_matrix(frame, side)
    per_cluster = frame.groupby(cluster)[group].nunique()
    if (per_cluster > 1).any():
        bad = per_cluster[per_cluster > 1].index[0]
        raise ValueError(f"cluster {bad!r} of column {cluster!r} has several {group!r} values")
    clusters, cluster_index = np.unique(frame[cluster].to_numpy(), return_inverse=True)
    cluster_group = frame.groupby(cluster)[group].first().reindex(clusters).to_numpy()
    observed = eta_squared(gates, cluster_group[cluster_index])
    rng = np.random.default_rng(seed)
    null = np.array(
        [eta_squared(gates, rng.permutation(cluster_group)[cluster_index]) for _ in range(permutations)]
    )
    null_mean = float(null.mean())
    return GateSeparation(
        eta2=observed,
        null_mean=null_mean,
        null_q95=float(np.quantile(null, 0.95)),
        p_value=float((1 + (null >= observed - 1e-12).sum()) / (1 + permutations)),
        excess=observed / null_mean if null_mean > 0 else float("inf"),
        spread=float((gates.max(axis=1) - gates.min(axis=1)).mean()),
        n_groups=int(len(np.unique(cluster_group))),
        n_clusters=int(len(clusters)),
    )


def separation_table(
    frames: Mapping[str, pd.DataFrame],
    tests: Mapping[str, tuple[str, str, str]],
    permutations: int = 999,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`gate_separation` for several models × tests: ``tests`` maps a name to ``(side, group, cluster)``."""
    rows = []
    for model, frame in frames.items():
        for name, (side, group, cluster) in tests.items():
            rows.append(
                {
                    "model": model,
                    "test": name,
                    **gate_separation(frame, side, group, cluster, permutations, seed).as_dict(),
                }
            )
    return pd.DataFrame(rows).set_index(["model", "test"])


def plot_gate_heatmap(
    means: pd.DataFrame, title: str, ylabel: str, ax: plt.Axes | None = None, p_value: float | None = None
) -> plt.Figure:
    """Heatmap of :func:`mean_gates_by`: one row per group (labelled with its count), one column per expert.

    The numbers are the mean gate weights; the colour is the weight minus the uniform 1/n on a **fixed** scale
    (±1/n: full blue = expert unused, full red = twice its uniform share), so a figure of ±0.004 differences looks
    as flat as it is and figures of different runs compare by eye. ``p_value`` (from :func:`separation_table`, a
    cluster permutation test) is printed in the title: whether the rows differ beyond chance is that test's
    answer, not the colour's."""
    values = means.drop(columns="n").to_numpy()
    counts = means["n"].to_numpy(dtype=float)
    overall = (values * counts[:, None]).sum(axis=0) / counts.sum()
    n = values.shape[1]
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.2 * n + 2.9, 0.34 * len(means) + 1.4))
    else:
        fig = ax.figure
    image = ax.imshow(values - 1.0 / n, cmap="RdBu_r", vmin=-1.0 / n, vmax=1.0 / n, aspect="auto")
    ax.set_xticks(range(n))
    ax.set_xticklabels([f"{c}\n(mean {m:.3f})" for c, m in zip(means.columns[1:], overall)], fontsize=8)
    ax.set_yticks(range(len(means)))
    ax.set_yticklabels([f"{g} (n={c})" for g, c in zip(means.index, means["n"])], fontsize=8)
    for i in range(values.shape[0]):
        for j in range(n):
            ax.text(j, i, f"{values[i, j]:.3f}", ha="center", va="center", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(
        title
        + ("" if p_value is None else f"\n(groups differ beyond chance? permutation p = {p_value:.3f})"),
        fontsize=10,
    )
    fig.colorbar(image, ax=ax, label=f"mean weight − uniform 1/{n}")
    return fig
