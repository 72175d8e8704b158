"""Our own trained labeller: character 1–3-gram TF-IDF + logistic regression.

Why characters and not jieba words: Weibo replies are short, full of catch-phrases, slang ("yyds", "绝绝子"),
emoji codes ("[允悲]") and typos; character n-grams need no segmenter, cover unseen words through their
pieces, and train in well under a second on the course world.

Saved as one JSON file (vocabulary, idf, coefficients, intercepts, settings), not pickle/joblib: loading a
pickle runs arbitrary code, and a labeller is exactly the kind of file people pass around with a notebook;
JSON is also readable, diff-able and independent of the scikit-learn version that trained it. ``skops`` would
be safe too, but is one more dependency for what is a dictionary and two arrays.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.special import expit, softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from .base import DEFAULT_LABELS, check_labels, labels_from_proba, normalise_text
from .data import text_keys, warn_duplicates, warn_if_shared

FORMAT = "socialalign-ngram-logreg/1"


class NgramLogRegLabeller:
    """Character n-gram TF-IDF + (multinomial) logistic regression.

    ``C`` is the inverse L2 strength; among {0.3, 1, 3, 10, 30}, 10 was best on the course world's *validation*
    split (tied with 30 for three labels, alone for two): the phrase banks are clean signals, so weak
    regularisation pays. ``sublinear_tf``
    damps repeated emoji ("[怒][怒][怒]") so one repeated code cannot outvote the words.
    """

    def __init__(
        self,
        labels: Sequence[str] = DEFAULT_LABELS,
        ngram_range: tuple[int, int] = (1, 3),
        C: float = 10.0,
        min_df: int = 1,
        sublinear_tf: bool = True,
        strip_hashtags: bool = True,
        max_iter: int = 2000,
    ):
        self.labels = check_labels(labels)
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))
        self.C = float(C)
        self.min_df = int(min_df)
        self.sublinear_tf = bool(sublinear_tf)
        self.strip_hashtags = bool(strip_hashtags)
        self.max_iter = int(max_iter)
        self._vectorizer: TfidfVectorizer | None = None
        self._coef: np.ndarray | None = None  # [n_labels, n_features], or [1, n_features] for two labels
        self._intercept: np.ndarray | None = None
        self.train_keys: frozenset[str] = frozenset()  # digests of the training texts (data.text_keys)

    # -- training ---------------------------------------------------------------------------------------
    def _prepare(self, texts: Sequence[str]) -> list[str]:
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        return [normalise_text(t) if self.strip_hashtags else t for t in texts]

    def _new_vectorizer(self, vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
        return TfidfVectorizer(
            analyzer="char",
            ngram_range=self.ngram_range,
            min_df=self.min_df,
            sublinear_tf=self.sublinear_tf,
            lowercase=True,
            vocabulary=vocabulary,
        )

    def fit(
        self, texts: Sequence[str], labels: Sequence[str], held_out: Sequence[str] | None = None
    ) -> NgramLogRegLabeller:
        """Fit on labelled replies. Every label of ``self.labels`` must occur at least once in ``labels``.

        The labeller remembers digests of its training texts (``train_keys``, saved with it), so
        ``evaluate_labeller`` can warn when a test set shares texts with them. Texts repeated inside the
        training set with *different* labels are warned about here: they are usually a dataset's duplicates.
        ``held_out``: the texts it will be tested on; a warning when they share texts with ``texts``.
        """
        if len(texts) != len(labels):
            raise ValueError(f"fit: {len(texts)} texts but {len(labels)} labels")
        unknown = sorted(set(labels) - set(self.labels))
        missing = [lab for lab in self.labels if lab not in set(labels)]
        if unknown or missing:
            raise ValueError(f"fit: labels {unknown} are not in {self.labels}; labels {missing} never occur")
        vec = self._new_vectorizer()
        x = vec.fit_transform(self._prepare(texts))
        y = np.array([self.labels.index(lab) for lab in labels])
        clf = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(x, y)
        self._vectorizer, self._coef, self._intercept = vec, clf.coef_.copy(), clf.intercept_.copy()
        self.train_keys = text_keys(texts)
        if len(self.train_keys) < len(texts):
            warn_duplicates(texts, labels, "NgramLogRegLabeller.fit")
        if held_out is not None:
            warn_if_shared(self.train_keys, list(held_out), "NgramLogRegLabeller.fit")
        return self

    @property
    def is_fitted(self) -> bool:
        return self._vectorizer is not None

    # -- inference --------------------------------------------------------------------------------------
    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        """Linear scores ``[n, n_labels]`` (``[n, 1]`` for two labels, as scikit-learn's binary model)."""
        if self._vectorizer is None or self._coef is None or self._intercept is None:
            raise RuntimeError("NgramLogRegLabeller is not fitted: call fit() or load()")
        prepared = self._prepare(texts)
        if not prepared:
            return np.zeros((0, self._coef.shape[0]))
        x = self._vectorizer.transform(prepared)
        return np.asarray(x @ self._coef.T) + self._intercept

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities ``[n, n_labels]`` in ``self.labels`` order; computed from the stored arrays, so a loaded
        labeller gives bit-identical numbers to the one that was saved."""
        z = self.decision_function(texts)
        if len(self.labels) == 2:
            p = expit(z[:, 0])
            return np.stack([1.0 - p, p], axis=1)
        return softmax(z, axis=1)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return labels_from_proba(self.predict_proba(texts), self.labels)

    def top_features(self, k: int = 10) -> dict[str, list[tuple[str, float]]]:
        """The ``k`` n-grams with the largest weight per label: what the classifier actually looks at."""
        if self._vectorizer is None or self._coef is None:
            raise RuntimeError("NgramLogRegLabeller is not fitted")
        names = self._vectorizer.get_feature_names_out()
        coef = np.vstack([-self._coef[0], self._coef[0]]) if len(self.labels) == 2 else self._coef
        return {
            lab: [(str(names[j]), round(float(coef[i, j]), 3)) for j in np.argsort(-coef[i])[:k]]
            for i, lab in enumerate(self.labels)
        }

    # -- persistence ------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write one UTF-8 JSON file; floats are written with ``repr`` precision, so the round trip is exact."""
        if self._vectorizer is None or self._coef is None or self._intercept is None:
            raise RuntimeError("NgramLogRegLabeller is not fitted: nothing to save")
        vocab = sorted(self._vectorizer.vocabulary_.items(), key=lambda kv: kv[1])
        doc = {
            "format": FORMAT,
            "labels": list(self.labels),
            "settings": {
                "ngram_range": list(self.ngram_range),
                "C": self.C,
                "min_df": self.min_df,
                "sublinear_tf": self.sublinear_tf,
                "strip_hashtags": self.strip_hashtags,
                "max_iter": self.max_iter,
            },
            "vocabulary": [term for term, _ in vocab],
            "idf": self._vectorizer.idf_.tolist(),
            "coef": self._coef.tolist(),
            "intercept": self._intercept.tolist(),
            "train_keys": sorted(self.train_keys),
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> NgramLogRegLabeller:
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a readable labeller file ({err})") from err
        if doc.get("format") != FORMAT:
            raise ValueError(f"{path}: field 'format' is {doc.get('format')!r}, expected {FORMAT!r}")
        s = doc["settings"]
        self = cls(
            labels=doc["labels"],
            ngram_range=tuple(s["ngram_range"]),
            C=s["C"],
            min_df=s["min_df"],
            sublinear_tf=s["sublinear_tf"],
            strip_hashtags=s["strip_hashtags"],
            max_iter=s["max_iter"],
        )
        vocab = {term: i for i, term in enumerate(doc["vocabulary"])}
        vec = self._new_vectorizer(vocabulary=vocab)
        vec.idf_ = np.asarray(doc["idf"], dtype=np.float64)
        coef = np.asarray(doc["coef"], dtype=np.float64)
        if coef.shape[1] != len(vocab) or len(doc["idf"]) != len(vocab):
            raise ValueError(
                f"{path}: 'coef' has {coef.shape[1]} columns, 'idf' {len(doc['idf'])}, "
                f"but 'vocabulary' has {len(vocab)} terms"
            )
        self._vectorizer, self._coef = vec, coef
        self._intercept = np.asarray(doc["intercept"], dtype=np.float64)
        self.train_keys = frozenset(doc.get("train_keys", ()))  # absent in files saved before it existed
        return self

    def __repr__(self) -> str:
        state = f"{len(self._vectorizer.vocabulary_)} n-grams" if self._vectorizer is not None else "unfitted"
        return f"NgramLogRegLabeller(labels={self.labels}, C={self.C}, {state})"
