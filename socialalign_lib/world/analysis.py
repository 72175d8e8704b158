"""How much of a reply's sentiment does the topic alone, the persona alone, or both explain?

docs/design.md#the-embedded-world asks that the world make personalisation *matter*. We measure it with the
truth: the mean
log-likelihood of the observed labels under five predictors, reported as McFadden's pseudo-R²
``1 - NLL(model) / NLL(marginal)``:

* marginal  — the global label frequencies (knows nothing);
* category  — the mean crowd of the topic's category (knows the kind of news, not the news);
* topic     — the topic's crowd distribution (the expected p(s|u,t) over its repliers): what a crowd-level
              model that ignores who is replying could at best know;
* persona   — the user's average disposition, p(s|u,t') averaged over all topics t' of the world;
* both      — the true p(s|u,t).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .generate import World
from .latent import sentiment_probs


def explained_sentiment(world: World) -> pd.DataFrame:
    labels = world.labels
    y = np.array([labels.index(r.sentiment) for r in world.responses])
    marginal = np.bincount(y, minlength=len(labels)) / len(y)
    crowd = world.true_crowd()
    by_category: dict[str, list] = {}
    for t in world.topics:
        if t.topic_id in crowd:
            by_category.setdefault(t.category, []).append(crowd[t.topic_id])
    category_crowd = {c: np.mean(v, axis=0) for c, v in by_category.items()}
    lts = list(world.latent_topics.values())
    user_avg = {
        uid: np.mean([sentiment_probs(lu, lt, labels) for lt in lts], axis=0)
        for uid, lu in world.latent_users.items()
    }
    preds = {
        "marginal": np.tile(marginal, (len(y), 1)),
        "category": np.array([category_crowd[world.topic(r.topic_id).category] for r in world.responses]),
        "topic": np.array([crowd[r.topic_id] for r in world.responses]),
        "persona": np.array([user_avg[r.post.user_id] for r in world.responses]),
        "both": np.array([world.response_probs[(r.topic_id, r.post.user_id)] for r in world.responses]),
    }
    nll = {k: float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)))) for k, p in preds.items()}
    return pd.DataFrame(
        {
            "predictor": list(nll),
            "nll": list(nll.values()),
            "pseudo_r2": [1 - v / nll["marginal"] for v in nll.values()],
            "accuracy": [float((p.argmax(1) == y).mean()) for p in preds.values()],
        }
    )
