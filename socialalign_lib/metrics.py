"""Micro-level metrics: one generated reply against the real one(s), for Chinese text.

Every score is a float in [0, 1] (papers print ×100). What each function measures, exactly:

* Sentiment: :func:`accuracy`, :func:`macro_f1` of predicted vs real labels (scikit-learn).
* Overlap: :func:`rouge_f1` (ROUGE-1/2/L F1 through ``rouge-chinese``, on characters or jieba tokens),
  :func:`corpus_bleu` / :func:`sentence_bleu` (``sacrebleu``, ``tokenize="zh"``) and :func:`char_bleu4`
  (PopALM's character BLEU-4: NLTK's ``sentence_bleu`` with smoothing method 3, re-implemented so NLTK is not a
  dependency). Never ``rouge_score``'s default tokenizer: it keeps only ``[a-z0-9]`` and scores Chinese as empty.
* PopALM protocol: :func:`best_over_references` (best of 10 gold replies, at top-1/3/5 generations) and
  :func:`popalm_scores` (its mean over posts, with distinct-1/2).
* Diversity and length: :func:`distinct_n` (the standard one), :func:`length_ratio`.
* Persona: :func:`persona_consistency` — does the reply read like this user's own posts.

Tokens: *characters* are the non-whitespace characters of the text; *jieba tokens* are ``jieba.lcut`` output
minus whitespace tokens. Punctuation stays a token in both, as in PopALM's evaluation: "！！！" is part of how
Weibo users write.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd
import sacrebleu
from rouge_chinese import Rouge
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score

from socialalign_lib.data.schema import SENTIMENTS

__all__ = [
    "ROUGE_KEYS",
    "POPALM_KEYS",
    "STYLE_FEATURES",
    "accuracy",
    "macro_f1",
    "char_tokens",
    "jieba_tokens",
    "rouge_f1",
    "mean_rouge_f1",
    "corpus_bleu",
    "sentence_bleu",
    "char_bleu4",
    "distinct_n",
    "length_ratio",
    "style_features",
    "style_typicality",
    "lexical_similarity",
    "persona_consistency",
    "persona_consistency_parts",
    "reference_scores",
    "best_over_references",
    "popalm_scores",
]

Tokenizer = Literal["char", "jieba"]
ROUGE_KEYS: tuple[str, ...] = ("rouge-1", "rouge-2", "rouge-l")
POPALM_KEYS: tuple[str, ...] = (*ROUGE_KEYS, "bleu-4")
_SPACE = re.compile(r"\s+")


# --------------------------------------------------------------------------------------------- sentiment
def _check_sentiment(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("no labels to score")
    unknown = (set(y_true) | set(y_pred)) - set(labels)
    if unknown:
        raise ValueError(f"labels {sorted(map(str, unknown))} are not in the label set {tuple(labels)}")


def accuracy(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] = SENTIMENTS) -> float:
    """Share of replies whose predicted sentiment equals the real one: ``mean(y_pred == y_true)``.

    ``labels`` is checked, not used for the score: a label outside the set (a typo, another labeller's scheme)
    raises instead of silently counting as a miss.
    """
    _check_sentiment(y_true, y_pred, labels)
    return float(accuracy_score(list(y_true), list(y_pred)))


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] = SENTIMENTS) -> float:
    """Unweighted mean over ``labels`` of the per-class F1 = 2·P·R / (P + R) (sklearn, ``average="macro"``).

    Why macro: Weibo crowds are often dominated by one sentiment, and a model that always says "negative" has a
    high accuracy but a macro-F1 near 1/3. Every class in ``labels`` counts, even one absent from both lists
    (its F1 is then 0, ``zero_division=0``), so scores stay comparable across topics.
    """
    _check_sentiment(y_true, y_pred, labels)
    return float(f1_score(list(y_true), list(y_pred), labels=list(labels), average="macro", zero_division=0))


# --------------------------------------------------------------------------------------------- tokens
def char_tokens(text: str) -> list[str]:
    """The non-whitespace characters of ``text``: ``"好 的！" -> ["好", "的", "！"]``."""
    return list(_SPACE.sub("", text))


@lru_cache(maxsize=65536)
def _jieba_cached(text: str) -> tuple[str, ...]:
    import jieba

    return tuple(t for t in jieba.lcut(text) if t.strip())


def jieba_tokens(text: str) -> list[str]:
    """jieba's default (accurate-mode) segmentation, whitespace tokens dropped. Cached: references are re-scored
    against every generation."""
    return list(_jieba_cached(text))


def _tokens(text: str, tokenizer: Tokenizer) -> list[str]:
    if tokenizer == "char":
        return char_tokens(text)
    if tokenizer == "jieba":
        return jieba_tokens(text)
    raise ValueError(f"unknown tokenizer {tokenizer!r}; use 'char' or 'jieba'")


# --------------------------------------------------------------------------------------------- ROUGE
@lru_cache(maxsize=2)
def _rouge(unique_ngrams: bool) -> Rouge:
    return Rouge(metrics=list(ROUGE_KEYS), exclusive=unique_ngrams)


def rouge_f1(
    hyp: str, ref: str, tokenizer: Tokenizer = "jieba", unique_ngrams: bool = True
) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 of ``hyp`` against ``ref``, computed by ``rouge-chinese``.

    Both texts are tokenised (characters or jieba tokens) and joined by spaces, which is the input
    ``rouge-chinese`` expects. Definitions (its implementation, as PopALM used it):

    * ROUGE-N: P = |overlap| / |hyp n-grams|, R = |overlap| / |ref n-grams|, F1 = 2PR / (P + R + 1e-8). With
      ``unique_ngrams=True`` (the library default, so PopALM's numbers) the n-grams are *sets*: "哈哈哈" has one
      distinct character unigram. ``False`` counts them as multisets with clipped overlap, as ROUGE-1.5.5 does.
    * ROUGE-L: summary-level LCS: texts are split into sentences at 。！？, the union LCS of each reference
      sentence with the hypothesis sentences is summed, P = sum / |hyp|, R = sum / |ref|, F1 as above.

    An empty text (after removing whitespace) scores 0 on all three instead of raising, as a model that
    produced nothing earns nothing. ``rouge-chinese`` reconstructs the LCS recursively; that is fine for
    replies (sentences of a few hundred tokens), not for whole documents.
    """
    h, r = _tokens(hyp, tokenizer), _tokens(ref, tokenizer)
    if not h or not r:
        return dict.fromkeys(ROUGE_KEYS, 0.0)
    scores = _rouge(unique_ngrams).get_scores(" ".join(h), " ".join(r))[0]
    return {k: float(scores[k]["f"]) for k in ROUGE_KEYS}


def mean_rouge_f1(
    hyps: Sequence[str], refs: Sequence[str], tokenizer: Tokenizer = "jieba", unique_ngrams: bool = True
) -> dict[str, float]:
    """Mean over pairs of :func:`rouge_f1` (``hyps[i]`` vs ``refs[i]``): the usual "average sentence ROUGE"."""
    if len(hyps) != len(refs) or not hyps:
        raise ValueError(f"need equally many (>0) hypotheses and references, got {len(hyps)} and {len(refs)}")
    rows = np.array(
        [
            [s[k] for k in ROUGE_KEYS]
            for s in (rouge_f1(h, r, tokenizer, unique_ngrams) for h, r in zip(hyps, refs))
        ]
    )
    return dict(zip(ROUGE_KEYS, rows.mean(axis=0).tolist()))


# --------------------------------------------------------------------------------------------- BLEU
def _as_reference_lists(refs: Sequence[str | Sequence[str]]) -> list[list[str]]:
    return [[r] if isinstance(r, str) else list(r) for r in refs]


def corpus_bleu(hyps: Sequence[str], refs: Sequence[str | Sequence[str]]) -> float:
    """sacreBLEU corpus BLEU-4 with the Chinese tokenizer (``tokenize="zh"``: each CJK character is a token,
    other runs are tokenised as in 13a), default ``exp`` smoothing, divided by 100.

    ``refs[i]`` is the reference (a string) or references (a list, any number per hypothesis) of ``hyps[i]``.
    Corpus BLEU pools n-gram counts over all pairs before taking precisions, so it is *not* the mean of
    :func:`sentence_bleu`; it is the number to report for a system.
    """
    if len(hyps) != len(refs) or not hyps:
        raise ValueError(f"need equally many (>0) hypotheses and references, got {len(hyps)} and {len(refs)}")
    ref_lists = _as_reference_lists(refs)
    width = max(len(r) for r in ref_lists)
    streams = [[r[j] if j < len(r) else None for r in ref_lists] for j in range(width)]
    return float(sacrebleu.corpus_bleu(list(hyps), streams, tokenize="zh").score) / 100.0


def sentence_bleu(hyp: str, refs: str | Sequence[str]) -> float:
    """sacreBLEU sentence BLEU-4 (``tokenize="zh"``, ``exp`` smoothing, effective order) against one or more
    references, divided by 100. Noisy on short replies: prefer :func:`corpus_bleu` for a system."""
    ref_list = [refs] if isinstance(refs, str) else list(refs)
    return float(sacrebleu.sentence_bleu(hyp, ref_list, tokenize="zh").score) / 100.0


def _ngram_counts(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def char_bleu4(hyp: str, refs: str | Sequence[str], max_n: int = 4) -> float:
    """PopALM's "bleu-4": NLTK ``sentence_bleu(refs, hyp, smoothing_function=SmoothingFunction().method3)`` on
    characters, uniform weights 1/max_n. Re-implemented (NLTK is not a dependency); a test checks it against NLTK
    when NLTK is installed.

    Definition: p_n = Σ_g min(c_hyp(g), max_ref c_ref(g)) / max(1, Σ_g c_hyp(g)) over character n-grams g;
    a zero p_n is replaced by 1 / (2^k · denominator), k = 1, 2, … for the 1st, 2nd … zero (method 3, the NIST
    geometric sequence); BP = 1 if |hyp| > r else exp(1 − r/|hyp|), r = the reference length closest to |hyp|
    (shorter on ties). BLEU = BP · exp(Σ_n log p_n / max_n), and 0 when no unigram matches or ``hyp`` is empty.
    Characters are non-whitespace characters (PopALM used ``list(text)``, spaces included; replies rarely
    contain any).
    """
    h = char_tokens(hyp)
    ref_toks = [char_tokens(r) for r in ([refs] if isinstance(refs, str) else refs)]
    if not ref_toks:
        raise ValueError("char_bleu4 needs at least one reference")
    if not h:
        return 0.0
    numerators, denominators = [], []
    for n in range(1, max_n + 1):
        counts = _ngram_counts(h, n)
        max_ref: Counter = Counter()
        for r in ref_toks:
            max_ref |= _ngram_counts(r, n)
        numerators.append(sum(min(c, max_ref[g]) for g, c in counts.items()))
        denominators.append(max(1, sum(counts.values())))
    if numerators[0] == 0:
        return 0.0
    num, den = np.array(numerators, dtype=float), np.array(denominators, dtype=float)
    zero = num == 0
    num[zero] = 1.0 / 2.0 ** np.cumsum(zero)[zero]
    log_p = np.log(num / den)
    closest = min((len(r) for r in ref_toks), key=lambda length: (abs(length - len(h)), length))
    bp = 1.0 if len(h) > closest else math.exp(1.0 - closest / len(h))
    return float(bp * math.exp(log_p.mean()))


# --------------------------------------------------------------------------------------------- diversity, length
def distinct_n(texts: str | Sequence[str], n: int = 1) -> float:
    """Standard Distinct-n: #unique character n-grams / #character n-grams, pooled over all ``texts``.

    n-grams do not cross text boundaries; whitespace is removed first. 0.0 when no text has n characters.
    Why not PopALM's own: its ``distinct_n`` counts jieba *tokens whose length is n* and divides the number of
    types seen exactly once by the number of occurrences — not Distinct-n as published (Li et al., 2016).
    """
    if isinstance(texts, str):
        texts = [texts]
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    counts: Counter = Counter()
    for t in texts:
        counts.update(_ngram_counts(char_tokens(t), n))
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def length_ratio(generated: str | Sequence[str], references: str | Sequence[str]) -> float:
    """Σ |generated| / Σ |references| in non-whitespace characters (BLEU's c/r, on characters).

    1.0 means the model writes as much as the real public; SocialAlign asks for "length like your history
    posts", so this ratio is a cheap check that the instruction is followed. Ratios of sums, not a mean of
    ratios: one reply of 1 character would otherwise dominate.
    """
    gen = [generated] if isinstance(generated, str) else list(generated)
    ref = [references] if isinstance(references, str) else list(references)
    ref_len = sum(len(char_tokens(t)) for t in ref)
    if ref_len == 0:
        raise ValueError("references have no characters; the length ratio is undefined")
    return sum(len(char_tokens(t)) for t in gen) / ref_len


# --------------------------------------------------------------------------------------------- persona consistency
_EMOJI = (
    r"\[[\u4e00-\u9fffA-Za-z]{1,8}\]"  # Weibo emoji codes such as [哈哈] [doge]
    r"|[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B50\u2764]"
)
_STYLE_PATTERNS: dict[str, str] = {
    "emoji": _EMOJI,
    "exclaim": r"[！!]",
    "question": r"[？?]",
    "tilde": r"[~～]",
    "ellipsis": r"…|\.{3}|。{3}",
    "period": r"。",
    "comma": r"[，,、]",
    "latin": r"[A-Za-z]",
    "digit": r"[0-9０-９]",
}
STYLE_FEATURES: tuple[str, ...] = ("log_length", *_STYLE_PATTERNS)
"""Names of the columns of :func:`style_features`."""
_STYLE_FLOORS = np.array([0.35] + [0.02] * len(_STYLE_PATTERNS))


def style_features(texts: Sequence[str]) -> np.ndarray:
    """Style of each text as ``[n, len(STYLE_FEATURES)]``: ``log(1 + #characters)``, then the rate per character
    of emoji (Weibo ``[xx]`` codes and Unicode emoji), ！, ？, ~, …, 。, ，, Latin letters and digits.

    Rates, not counts, so that style is separate from length; log length because "twice as long" matters
    equally at 10 and at 100 characters. Emoji codes are removed before the other features are counted, and
    every rate is per character of the whole text.
    """
    s = pd.Series(list(texts), dtype=object).astype(str).str.replace(_SPACE, "", regex=True)
    length = s.str.len().to_numpy(dtype=float)
    plain = s.str.replace(_EMOJI, "", regex=True)  # so "[doge]" is an emoji, not four Latin letters
    rates = [
        (s if name == "emoji" else plain).str.count(p).to_numpy(dtype=float)
        for name, p in _STYLE_PATTERNS.items()
    ]
    return np.column_stack([np.log1p(length), *(r / np.maximum(length, 1.0) for r in rates)])


def style_typicality(reply: str, history_texts: Sequence[str]) -> np.ndarray:
    """How typical ``reply`` is of the history, per style feature: ``exp(−z²/2)``, ``z = (f − μ) / σ``, where μ and
    σ are the mean and standard deviation of the feature over the history posts and σ is floored (0.35 for log
    length, 0.02 for rates). Shape ``[len(STYLE_FEATURES)]``, each in (0, 1].

    Why this and not a cosine of feature vectors: a user's style is a *distribution* — someone who puts "！" in
    half their posts is matched by a reply with or without it, someone who never does is not — and the z-score
    measures the reply against that spread. A cosine of raw vectors is dominated by the largest feature
    (length) and is close to 1 for almost any pair of non-negative rate vectors. The floor keeps a feature the
    user never varies from turning any deviation into 0: one extra "！" in a 20-character reply (rate 0.05) gives
    z = 2.5, typicality 0.04.
    """
    hist = style_features(history_texts)
    if len(hist) == 0:
        raise ValueError("persona consistency needs at least one history text")
    sigma = np.maximum(hist.std(axis=0), _STYLE_FLOORS)
    z = (style_features([reply])[0] - hist.mean(axis=0)) / sigma
    return np.exp(-0.5 * z**2)


def lexical_similarity(
    reply: str, history_texts: Sequence[str], vectorizer: TfidfVectorizer | None = None
) -> float:
    """Cosine between the reply's character 1–2-gram TF-IDF vector and the centroid of the history posts' vectors.

    Captures *what* a user says: recurring words, catchphrases, emoji codes. Characters rather than jieba words
    because jieba splits Weibo slang and emoji codes unpredictably. By default the vectorizer (sublinear tf,
    l2 norm) is fitted on this user's history; pass one fitted on all users' posts to weight n-grams by how
    rare they are in the population instead. 0.0 when the reply shares no n-gram with the vocabulary.
    """
    hist = [_SPACE.sub("", t) for t in history_texts]
    if not any(hist):
        raise ValueError("persona consistency needs at least one non-empty history text")
    if vectorizer is None:
        vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True)
        vectorizer.fit(hist)
    h = np.asarray(vectorizer.transform(hist).mean(axis=0)).ravel()
    r = vectorizer.transform([_SPACE.sub("", reply)]).toarray().ravel()
    denom = np.linalg.norm(h) * np.linalg.norm(r)
    return float(h @ r / denom) if denom > 0 else 0.0


def persona_consistency_parts(
    reply: str,
    history_texts: Sequence[str],
    style_weight: float = 0.5,
    vectorizer: TfidfVectorizer | None = None,
) -> dict[str, float]:
    """:func:`persona_consistency` with its parts: ``score``, ``style`` (mean of :func:`style_typicality`),
    ``lexical`` (:func:`lexical_similarity`) and ``style:<feature>`` for each style feature."""
    if not 0.0 <= style_weight <= 1.0:
        raise ValueError(f"style_weight must be in [0, 1], got {style_weight}")
    typ = style_typicality(reply, history_texts)
    style = float(typ.mean())
    lexical = lexical_similarity(reply, history_texts, vectorizer)
    out = {"score": style_weight * style + (1.0 - style_weight) * lexical, "style": style, "lexical": lexical}
    out.update({f"style:{name}": float(v) for name, v in zip(STYLE_FEATURES, typ)})
    return out


def persona_consistency(
    reply: str,
    history_texts: Sequence[str],
    style_weight: float = 0.5,
    vectorizer: TfidfVectorizer | None = None,
) -> float:
    """How much ``reply`` reads like the user's own posts, in [0, 1]:
    ``style_weight · mean(style_typicality) + (1 − style_weight) · lexical_similarity``.

    Two views, because SocialAlign's persona has both: *how* the user writes (语言风格: length, emoji,
    exclamation and question marks, "~", "…", punctuation density, Latin letters and digits — see
    :func:`style_typicality`) and *what* they write about (兴趣话题: character n-gram TF-IDF similarity to the
    history — see :func:`lexical_similarity`). Both are bounded, so the weighted mean is too; the default weighs
    them equally. A reference-free metric: it needs the history, not the real reply, so it also scores replies to
    topics the user never answered. Its absolute level depends on the user (a user with uniform posts is easier
    to match), so compare models on the same (user, topic) pairs.
    """
    return persona_consistency_parts(reply, history_texts, style_weight, vectorizer)["score"]


# --------------------------------------------------------------------------------------------- PopALM protocol
def reference_scores(hyp: str, refs: Sequence[str], tokenizer: Tokenizer = "jieba") -> np.ndarray:
    """Scores of ``hyp`` against each reference as ``[len(refs), 4]``, columns :data:`POPALM_KEYS`: ROUGE-1/2/L F1
    (``rouge-chinese``, ``tokenizer`` tokens, unique n-grams as PopALM) and :func:`char_bleu4` with that single
    reference. PopALM scores an empty prediction as the string "None"; we score it 0."""
    rows = []
    for ref in refs:
        r = rouge_f1(hyp, ref, tokenizer)
        rows.append([r["rouge-1"], r["rouge-2"], r["rouge-l"], char_bleu4(hyp, ref)])
    return np.array(rows, dtype=float).reshape(len(refs), len(POPALM_KEYS))


def best_over_references(
    generated: Sequence[str],
    references: Sequence[str],
    top_k: Sequence[int] = (1, 3, 5),
    select_by: str | None = "rouge-1",
    mode: Literal["best", "running_mean"] = "best",
    tokenizer: Tokenizer = "jieba",
) -> dict[int, dict[str, float]]:
    """PopALM's "best over the gold replies" scores of a post's generations, for each k in ``top_k``.

    ``generated`` are the post's generations in sampling order (at least ``max(top_k)``); ``references`` its gold
    replies (10, most-liked first; empty ones are skipped, as upstream). Each generation is scored against each
    reference (:func:`reference_scores`), then:

    * ``select_by="rouge-1"`` (upstream): the (generation, reference) pair with the highest ROUGE-1 F among the
      first k generations is kept, and *all four* scores are that pair's — so BLEU is "BLEU of the best-ROUGE
      pair", not the best BLEU. First pair wins ties. ``select_by=None``: each metric takes its own maximum.
    * ``mode="best"`` (ours): the value at k is that best over the first k generations — best-of-k, the natural
      reading of "top-k". ``mode="running_mean"`` reproduces upstream's ``testTop3/5.py``, whose best-so-far is
      never reset and appended after every generation, so it reports the mean of the k running maxima (lower
      than best-of-k). Top-1 is the same in both.

    Returns ``{k: {"rouge-1", "rouge-2", "rouge-l", "bleu-4"}}``, in [0, 1].
    """
    refs = [r for r in references if r.strip()]
    if not refs:
        raise ValueError("every reference is empty")
    kmax = max(top_k)
    if min(top_k) < 1 or len(generated) < kmax:
        raise ValueError(f"top_k {tuple(top_k)} needs {kmax} generations, got {len(generated)}")
    if mode not in ("best", "running_mean"):
        raise ValueError(f"unknown mode {mode!r}; use 'best' or 'running_mean'")
    scores = np.stack([reference_scores(g, refs, tokenizer) for g in generated[:kmax]])  # [k, refs, metrics]
    if select_by is None:
        running = np.maximum.accumulate(scores.max(axis=1), axis=0)  # [k, metrics]
    else:
        if select_by not in POPALM_KEYS:
            raise ValueError(f"select_by must be one of {POPALM_KEYS} or None, got {select_by!r}")
        col = POPALM_KEYS.index(select_by)
        flat = scores.reshape(-1, scores.shape[-1])  # generation-major, the order upstream loops in
        key = flat[:, col].reshape(kmax, -1)
        best_in_row = key.argmax(axis=1) + np.arange(kmax) * key.shape[1]
        # running argmax over generations; strict ">" keeps the earlier pair on ties, as upstream
        best_so_far = np.empty(kmax, dtype=int)
        current = best_in_row[0]
        for i, idx in enumerate(best_in_row):
            if flat[idx, col] > flat[current, col]:
                current = idx
            best_so_far[i] = current
        running = flat[best_so_far]
    out = {}
    for k in top_k:
        vals = running[k - 1] if mode == "best" else running[:k].mean(axis=0)
        out[k] = dict(zip(POPALM_KEYS, map(float, vals)))
    return out


def popalm_scores(
    generated: Sequence[Sequence[str]],
    references: Sequence[Sequence[str]],
    top_k: Sequence[int] = (1, 3, 5),
    select_by: str | None = "rouge-1",
    mode: Literal["best", "running_mean"] = "best",
    tokenizer: Tokenizer = "jieba",
    progress: Callable | None = None,
) -> pd.DataFrame:
    """PopALM's table for a test set: rows k in ``top_k``, columns ROUGE-1/2/L, BLEU-4 (means over posts of
    :func:`best_over_references`) and standard Distinct-1/2 over all posts' first k generations pooled.

    ``generated[i]`` and ``references[i]`` are post i's generations and gold replies. ``progress`` wraps the
    post iterator (e.g. ``tqdm.auto.tqdm``). Upstream scored only the first 1000 test posts; slice beforehand
    to do the same.
    """
    if len(generated) != len(references) or not generated:
        raise ValueError(
            f"need equally many (>0) posts of generations and references, "
            f"got {len(generated)} and {len(references)}"
        )
    posts = zip(generated, references)
    if progress is not None:
        posts = progress(posts, total=len(generated))
    per_post = [best_over_references(g, r, top_k, select_by, mode, tokenizer) for g, r in posts]
    rows = []
    for k in top_k:
        row = {m: float(np.mean([p[k][m] for p in per_post])) for m in POPALM_KEYS}
        pooled = [t for g in generated for t in g[:k]]
        row.update({"distinct-1": distinct_n(pooled, 1), "distinct-2": distinct_n(pooled, 2)})
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index(list(top_k), name="k"))
