"""How good is a labeller? Accuracy, macro-F1 and the confusion matrix, plus the figure for the notebook.

Macro-F1 is reported beside accuracy because the crowd comparison needs every class right, not just the
frequent one: a labeller that never says "neutral" can have fine accuracy and still shift every topic's
distribution.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from .base import SentimentLabeller
from .data import warn_if_shared


def evaluate_labeller(labeller: SentimentLabeller, texts: Sequence[str], gold: Sequence[str]) -> dict:
    """Score ``labeller`` on ``texts`` against ``gold``.

    Returns ``accuracy``, ``macro_f1``, ``f1`` (per label), ``confusion`` (``[n_labels, n_labels]`` nested list,
    rows = gold, columns = predicted, in ``labels`` order), ``labels``, ``n``, ``majority_accuracy`` (always
    answering the most frequent gold label: the floor a labeller must beat) and ``predicted_share`` (how often
    each label is predicted, to compare with the gold ``gold_share``) and ``shared_with_train`` (how many
    ``texts`` the labeller was trained or tuned on; a :class:`~.data.LeakageWarning` says so when > 0).
    """
    if len(texts) != len(gold):
        raise ValueError(f"evaluate_labeller: {len(texts)} texts but {len(gold)} gold labels")
    if not texts:
        raise ValueError("evaluate_labeller: no texts to evaluate")
    labels = list(labeller.labels)
    unknown = sorted(set(gold) - set(labels))
    if unknown:
        raise ValueError(
            f"evaluate_labeller: gold labels {unknown} are not in the labeller's labels {labels}"
        )
    shared = warn_if_shared(getattr(labeller, "train_keys", None), list(texts), "evaluate_labeller")
    pred = labeller.predict(list(texts))
    n = len(gold)
    counts_gold, counts_pred = Counter(gold), Counter(pred)
    return {
        "labels": labels,
        "n": n,
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0)),
        "f1": dict(
            zip(
                labels,
                f1_score(gold, pred, labels=labels, average=None, zero_division=0).tolist(),
                strict=True,
            )
        ),
        "confusion": confusion_matrix(gold, pred, labels=labels).tolist(),
        "majority_accuracy": counts_gold.most_common(1)[0][1] / n,
        "gold_share": [counts_gold[lab] / n for lab in labels],
        "predicted_share": [counts_pred[lab] / n for lab in labels],
        "shared_with_train": shared,
    }


def plot_confusion(
    cm: np.ndarray | Sequence[Sequence[int]],
    labels: Sequence[str],
    title: str,
    normalize: bool = True,
    ax=None,
):
    """Heatmap of a confusion matrix (rows = gold, columns = predicted); returns the matplotlib Figure.

    With ``normalize`` the colour is the share of each gold row (so rare classes are as visible as frequent
    ones) while the cell text keeps the raw count and adds the share.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    from .. import plots  # noqa: F401  (sets the headless backend and the CJK fonts)

    cm = np.asarray(cm, dtype=float)
    if cm.shape != (len(labels), len(labels)):
        raise ValueError(f"plot_confusion: matrix shape {cm.shape} does not fit {len(labels)} labels")
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    annot = np.array(
        [
            [f"{int(c)}\n{s:.0%}" if normalize else f"{int(c)}" for c, s in zip(cr, sr, strict=True)]
            for cr, sr in zip(cm, share, strict=True)
        ]
    )
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2.2, 1.0 * len(labels) + 1.4))
    else:
        fig = ax.figure
    sns.heatmap(
        share if normalize else cm,
        annot=annot,
        fmt="",
        cmap="Blues",
        vmin=0,
        vmax=1 if normalize else None,
        xticklabels=list(labels),
        yticklabels=list(labels),
        square=True,
        cbar_kws={"label": "share of gold row" if normalize else "replies"},
        ax=ax,
    )
    ax.set_xlabel("predicted label")
    ax.set_ylabel("gold label")
    ax.set_title(title)
    return fig
