"""NARRATOR: a hashtag-guided attentive network for multimodal post popularity (arXiv 2412.10737).

No official code exists; the component choices here are ours (docs/methods.md#narrator). Hashtags act as
*queries* over the
post's content — text character states and image region features, one attention per modality — because a hashtag
says what the post claims to be about, and what matters for popularity is whether the content shows it. Scores
are **cosine** similarities times a learned scale, so a hashtag and a region match by direction, not by norm, and
the best match per modality is a bounded number the regressor reads directly. The attended content (through a
narrow bottleneck), those best-match scores, face demographics, hashtag sentiment and a context (user prior,
posting month, hashtag and tag counts) are fused by an MLP plus a linear path, trained with MSE.

What made the match learnable (each measured on the world, see notebook 09): a hashtag is an *attentive* pooling
of its characters (the concept's characters outweigh the template's); text queries and keys share the char
encoder and start from identity maps, so a hashtag matches the characters it shares with the title at step 0;
image keys are the raw region vectors (identity start) and the image query is a per-character region-space
embedding initialised at its image co-occurrence centroid (:func:`init_char_image`, training posts, no labels).

Ablations (:class:`NarratorConfig`): ``guidance="self"`` (one learned query per modality, self-attentive pooling)
and ``guidance="mean"`` (masked mean pooling) still *see* the hashtags — their pooled vector goes to the head — so
the difference to ``"hashtag"`` is the guidance itself; ``use_image``, ``use_demographics`` and ``use_sentiment``
drop those inputs (:attr:`NarratorModel.fusion_width` says by how much).

Text goes through a char embedding and one residual convolution — much cheaper per training step than a
one-layer Transformer (measured: docs/design.md, "NARRATOR's text encoder"), and enough to spell a 1–3 character
concept name — or through a frozen Hugging Face encoder's precomputed states (``text_kind="states"``, see
``narrator_features.HFTextEncoder``).

Modules: :mod:`.model` (config, attention, encoder, network), :mod:`.train` (training and prediction),
:mod:`.experiments` (ablations and their summaries), :mod:`.figures`; every name is re-exported here, so
``socialalign_lib.popularity.narrator.X`` keeps working.
"""

from __future__ import annotations

from .experiments import VARIANTS, context_baseline, mean_ci, run_ablations, split_indices, summarise
from .figures import attention_maps, match_scores, plot_ablation_results, plot_hashtag_attention
from .model import (
    GUIDANCE,
    Batch,
    CharConvEncoder,
    HashtagGuidedAttention,
    NarratorConfig,
    NarratorModel,
    config_dict,
    masked_softmax,
)
from .train import TrainConfig, init_char_image, predict, regression_metrics, subset, train_narrator

__all__ = [
    "GUIDANCE",
    "VARIANTS",
    "Batch",
    "CharConvEncoder",
    "HashtagGuidedAttention",
    "NarratorConfig",
    "NarratorModel",
    "TrainConfig",
    "attention_maps",
    "config_dict",
    "context_baseline",
    "init_char_image",
    "masked_softmax",
    "match_scores",
    "mean_ci",
    "plot_ablation_results",
    "plot_hashtag_attention",
    "predict",
    "regression_metrics",
    "run_ablations",
    "split_indices",
    "subset",
    "summarise",
    "train_narrator",
]
