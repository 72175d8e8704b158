"""Any Hugging Face sequence classifier as a labeller (for users with the network or a local checkpoint).

A hub sentiment model rarely uses our label names: it says ``LABEL_0``/``LABEL_1``, ``negative``/``positive``,
``1 star``…``5 stars``, or Chinese names. ``label_map`` sends each model class (by id or by name) to one of our
labels; several model classes may map to one label (their probabilities add up), and a label no class maps to
gets probability 0 (e.g. a binary model under a three-label set never says "neutral": say so in the notebook,
or pick a three-class model). Without ``label_map`` the model's own ``id2label`` names must match ours
(case-insensitively, or by the first three letters: "neg", "neu", "pos").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .base import DEFAULT_LABELS, check_labels, labels_from_proba, normalise_text


class HFLabeller:
    """``AutoModelForSequenceClassification`` + its tokenizer, loaded from a hub name or a local folder.

    Offline use needs the files already on disk (``HF_HUB_OFFLINE=1`` makes a missing model fail fast instead of
    retrying the network). ``batch_size`` replies are scored per forward pass, truncated to ``max_length`` tokens.
    """

    def __init__(
        self,
        model: str | Path,
        labels: Sequence[str] = DEFAULT_LABELS,
        label_map: Mapping[int | str, str] | None = None,
        device: str | None = None,
        batch_size: int = 32,
        max_length: int = 128,
        strip_hashtags: bool = True,
        **from_pretrained_kw,
    ):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.labels = check_labels(labels)
        self.model_name = str(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_name, **from_pretrained_kw)
        self.model = AutoModelForSequenceClassification.from_pretrained(self.model_name, **from_pretrained_kw)
        self.model.to(self.device).eval()
        self.batch_size, self.max_length, self.strip_hashtags = (
            int(batch_size),
            int(max_length),
            bool(strip_hashtags),
        )
        self.mapping = self._resolve_mapping(label_map)  # [n_model_classes, n_labels], 0/1

    def _resolve_mapping(self, label_map: Mapping[int | str, str] | None) -> np.ndarray:
        id2label = {int(i): str(name) for i, name in self.model.config.id2label.items()}
        n_model = self.model.config.num_labels
        m = np.zeros((n_model, len(self.labels)))
        for i in range(n_model):
            name = id2label.get(i, f"LABEL_{i}")
            if label_map is not None:
                target = label_map.get(i, label_map.get(name))
                if target is None:
                    continue  # an unmapped model class is dropped; its mass is renormalised away
            else:
                target = next(
                    (
                        lab
                        for lab in self.labels
                        if lab.lower() == name.lower() or lab.lower()[:3] == name.lower()[:3]
                    ),
                    None,
                )
                if target is None:
                    raise ValueError(
                        f"{self.model_name}: model class {i} is named {name!r}, which matches none of "
                        f"{self.labels}; pass label_map={{{i}: '<label>', ...}}"
                    )
            if target not in self.labels:
                raise ValueError(
                    f"{self.model_name}: label_map sends model class {i} ({name!r}) to {target!r}, "
                    f"not one of {self.labels}"
                )
            m[i, self.labels.index(target)] = 1.0
        if m.sum() == 0:
            raise ValueError(f"{self.model_name}: label_map maps no model class to any of {self.labels}")
        return m

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``[n, n_labels]``: the model's softmax, summed into our labels and renormalised over mapped classes."""
        import torch

        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        prepared = [normalise_text(t) if self.strip_hashtags else t for t in texts]
        out = []
        with torch.inference_mode():
            for start in range(0, len(prepared), self.batch_size):
                batch = self.tokenizer(
                    prepared[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                logits = self.model(**batch).logits.float()
                out.append(torch.softmax(logits, dim=-1).cpu().numpy())
        probs = np.concatenate(out) if out else np.zeros((0, self.mapping.shape[0]))
        mapped = probs.astype(np.float64) @ self.mapping
        return mapped / mapped.sum(axis=1, keepdims=True).clip(min=1e-12)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return labels_from_proba(self.predict_proba(texts), self.labels)

    def __repr__(self) -> str:
        return f"HFLabeller({self.model_name!r}, labels={self.labels}, device={self.device!r})"
