"""The statistical persona backend: the five persona items from history statistics, no model at all.

A course must run offline, where GPT-4 cannot be asked, so this backend derives the five items from keyword/topic
counts, length/emoji/punctuation/catch-phrase statistics, lexicon sentiment, and documented heuristics for
personality and values (see :class:`StatisticalPersonaBackend`). It returns the same
:class:`~socialalign_lib.schema.Persona` as the LLM backends (:mod:`.backends`).

Its default dictionaries are the embedded world's phrase banks. The build stage must not import the simulator, so
they are stored as a package resource (``resources/persona_statistical.json``), written from the world lexicon by
:func:`world_dictionaries` + :func:`save_world_dictionaries`; a test checks that the stored copy still equals what
the world's lexicon gives. On real data, pass your own dictionaries in :class:`StatisticalConfig`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from socialalign_lib.data.persona_text import MAX_ITEM_CHARS
from socialalign_lib.data.schema import Persona, Post
from socialalign_lib.data.text import HASHTAG as _HASHTAG

_EMOJI = re.compile(r"\[[\u4e00-\u9fffA-Za-z0-9]{1,8}\]|[\U0001F300-\U0001FAFF\u2600-\u27BF]")
_CLAUSE_SPLIT = re.compile(r"[，,。！!？?~～…；;\s]+")
_SLOT = re.compile(r"\{[a-z]+\}")

# --------------------------------------------------------------------------------------------------------
# The default dictionaries: the embedded world's phrase banks, stored as a resource
# --------------------------------------------------------------------------------------------------------

#: The default dictionaries' file inside the ``socialalign_lib`` package (package data, like the history filter).
DICTIONARIES_RESOURCE = "resources/persona_statistical.json"


def _fragments(templates: Iterable[str], min_len: int = 2) -> list[str]:
    """Literal pieces of phrase-bank templates (slots removed), usable as substring keywords."""
    out = []
    for t in templates:
        out += [f.strip("，。 ") for f in _SLOT.split(t)]
    return sorted({f for f in out if len(f) >= min_len})


def _sentiment_lexicon_of(lx: Any) -> dict[str, list[str]]:
    lexicon: dict[str, list[str]] = {}
    for label, bank in (("positive", "pos"), ("negative", "neg"), ("neutral", "neu")):
        words = _fragments(str(x) for spec in lx.CATEGORIES.values() for x in spec[bank])
        lexicon[label] = sorted(set(words) | set(lx.GENERIC[label]) | set(lx.EMOJI[label]))
    # a fragment that occurs in two polarities says nothing
    shared = {w for a in lexicon for b in lexicon if a < b for w in set(lexicon[a]) & set(lexicon[b])}
    return {k: [w for w in v if w not in shared] for k, v in lexicon.items()}


def world_dictionaries(lexicon: Any) -> dict[str, Any]:
    """The statistical backend's dictionaries from a world lexicon module (``socialalign_lib.world.lexicon``).

    The lexicon is an argument, not an import: the build stage never loads the simulator. Key order matters
    (it breaks ties between categories and personalities), and JSON keeps it.
    """
    lx = lexicon
    return {
        "category_names": {c: str(s["name"]) for c, s in lx.CATEGORIES.items()},
        "category_keywords": {
            c: [str(s["name"]), *map(str, s["entities"])] for c, s in lx.CATEGORIES.items()
        },
        "sentiment_lexicon": _sentiment_lexicon_of(lx),
        "personality_markers": {str(s["zh"]): list(map(str, s["extra"])) for s in lx.PERSONALITIES.values()},
        "value_profiles": [
            {
                "phrase": str(s["zh"]),
                "stance": dict(s["stance"]),
                "interests": list(s["interests"]),
                "markers": [str(s["identity"])],
            }
            for s in lx.ARCHETYPES.values()
        ],
    }


def dictionaries_json(dictionaries: dict[str, Any]) -> str:
    """The resource file's text for ``dictionaries`` (one fixed layout, so a regenerated file diffs cleanly)."""
    return json.dumps(dictionaries, ensure_ascii=False, indent=1) + "\n"


def save_world_dictionaries(lexicon: Any, path: str | os.PathLike | None = None) -> None:
    """Rewrite the default dictionaries from ``lexicon`` (after editing the world's phrase banks), atomically.

    ``path`` defaults to the resource inside this checkout of the package.
    """
    from socialalign_lib.data.write import write_text

    target = path if path is not None else resources.files("socialalign_lib").joinpath(DICTIONARIES_RESOURCE)
    write_text(target, dictionaries_json(world_dictionaries(lexicon)))


@lru_cache(maxsize=1)
def _stored_dictionaries() -> dict[str, Any]:
    raw = resources.files("socialalign_lib").joinpath(DICTIONARIES_RESOURCE).read_text("utf-8")
    return json.loads(raw)


def default_dictionaries() -> dict[str, Any]:
    """The stored default dictionaries (a fresh copy: configs may edit theirs)."""
    return copy.deepcopy(_stored_dictionaries())


def world_sentiment_lexicon(lexicon: Any | None = None) -> dict[str, list[str]]:
    """positive/negative/neutral keyword lists from the world's reply phrase banks, generic words and emoji.

    ``lexicon``: a world lexicon module to derive them from; None reads the stored defaults (the same lists for
    the embedded world, without importing it).
    """
    if lexicon is None:
        return default_dictionaries()["sentiment_lexicon"]
    return _sentiment_lexicon_of(lexicon)


# --------------------------------------------------------------------------------------------------------
# The backend
# --------------------------------------------------------------------------------------------------------


@dataclass
class ValueProfile:
    """One value orientation the statistical backend can report: its phrase, stance per category, markers."""

    phrase: str
    stance: dict[str, float]
    interests: list[str]
    markers: list[str] = field(default_factory=list)


@dataclass
class StatisticalConfig:
    """Dictionaries and thresholds of the statistical backend (defaults: the embedded world's phrase banks).

    On real data, replace the dictionaries (``category_keywords``, ``sentiment_lexicon``,
    ``personality_markers``, ``value_profiles``) with your own; interests fall back to jieba keywords when no
    dictionary word occurs, and the style items need no dictionary. Length thresholds are the median length
    (characters of the user's own text, hashtags removed) that separates 简短 / 适中 / 长篇 (how the defaults were
    chosen: docs/design.md#statistical-persona-defaults).
    """

    category_names: dict[str, str] = field(default_factory=lambda: default_dictionaries()["category_names"])
    category_keywords: dict[str, list[str]] = field(
        default_factory=lambda: default_dictionaries()["category_keywords"]
    )
    sentiment_lexicon: dict[str, list[str]] = field(default_factory=world_sentiment_lexicon)
    personality_markers: dict[str, list[str]] = field(
        default_factory=lambda: default_dictionaries()["personality_markers"]
    )
    value_profiles: list[ValueProfile] = field(
        default_factory=lambda: [ValueProfile(**p) for p in default_dictionaries()["value_profiles"]]
    )
    length_thresholds: tuple[float, float] = (19.0, 37.0)
    emoji_threshold: float = 0.55
    tone_threshold: float = 0.15
    tone_stance_weight: float = 0.5
    n_interests: int = 3
    min_catch_count: int = 2


@dataclass
class HistoryStats:
    """What the statistical backend measured on one history (kept for notebooks and debugging)."""

    category_counts: dict[str, int]
    median_length: float
    emoji_share: float
    exclaim_share: float
    question_share: float
    polarity: list[int]  # per post with sentiment words: -1 / 0 / +1
    category_polarity: dict[str, float]
    openers: Counter
    personality_hits: dict[str, int]


class StatisticalPersonaBackend:
    """The five items from simple, documented statistics of the history; deterministic and instant.

    * 兴趣话题: the ``n_interests`` categories whose keywords (category name, entities; hashtags contain the
      entity) occur in the most posts (original + reposted text); jieba TF-IDF keywords if none occurs.
    * 语言风格: length class from the median own-text length, 爱用表情 when ≥ ``emoji_threshold`` of posts
      carry an emoji, the end punctuation habit, and a catch-phrase: a clause the user *opens* posts with at
      least ``min_catch_count`` times (n-gram frequency at the start of posts).
    * 情感基调: mean polarity of the posts (lexicon hits, own text only) → 积极 / 消极 / 中性 with
      ``tone_threshold``; ``tone_stance_weight`` × the mean stance of the chosen value profile (over the
      categories seen) is subtracted first, because a user who is angry about prices is not therefore a
      pessimist (the defaults' measurement: docs/design.md#statistical-persona-defaults).
    * 性格特征: the personality whose marker clauses occur most; without markers, punctuation and
      sentiment strength (many polar posts with "！" → 直率敢言, many emoji → 幽默风趣, many questions →
      理性严谨, else 温和友善).
    * 价值观: the value profile with the best score = 2·marker hits + agreement of its stance with the
      per-category polarity seen in the history + overlap with the interests; profiles without stance
      (中立) win when most posts are neutral.
    """

    def __init__(self, config: StatisticalConfig | None = None, sentiment: str = "lexicon") -> None:
        if sentiment not in ("lexicon", "snownlp"):
            raise ValueError(f"sentiment must be 'lexicon' or 'snownlp', got {sentiment!r}")
        self.config = config or StatisticalConfig()
        self.sentiment = sentiment

    @property
    def fingerprint(self) -> str:
        cfg = json.dumps(
            {k: v for k, v in self.config.__dict__.items() if k != "value_profiles"},
            sort_keys=True,
            ensure_ascii=False,
            default=str,
        )
        cfg += json.dumps(
            [p.__dict__ for p in self.config.value_profiles], sort_keys=True, ensure_ascii=False
        )
        return f"statistical:{self.sentiment}:{hashlib.sha256(cfg.encode()).hexdigest()[:8]}"

    # -- measurements --------------------------------------------------------------------------------------

    def _polarity(self, text: str) -> int | None:
        """-1/0/+1, or None when the text carries no sentiment evidence at all."""
        if self.sentiment == "snownlp":
            from snownlp import SnowNLP

            s = SnowNLP(text).sentiments if text.strip() else 0.5
            return 1 if s > 0.65 else -1 if s < 0.35 else 0
        hits = {k: sum(w in text for w in words) for k, words in self.config.sentiment_lexicon.items()}
        if not any(hits.values()):
            return None
        pos, neg = hits.get("positive", 0), hits.get("negative", 0)
        return int(np.sign(pos - neg)) if pos != neg else 0

    def measure(self, posts: Sequence[Post]) -> HistoryStats:
        cfg = self.config
        own = [_HASHTAG.sub("", p.text).strip() for p in posts]
        cats: Counter = Counter()
        cat_pol: dict[str, list[int]] = {}
        polarity: list[int] = []
        openers: Counter = Counter()
        pers: Counter = Counter()
        for p, text in zip(posts, own, strict=True):
            full = p.full_text + " " + " ".join(p.hashtags)
            hit = [c for c, words in cfg.category_keywords.items() if any(w in full for w in words)]
            cats.update(hit)
            pol = self._polarity(text)
            if pol is not None:
                polarity.append(pol)
                for c in hit:
                    cat_pol.setdefault(c, []).append(pol)
            clauses = [c for c in _CLAUSE_SPLIT.split(_EMOJI.sub("", text)) if c]
            if len(clauses) > 1 and 2 <= len(clauses[0]) <= 6:
                openers[clauses[0]] += 1
            for name, markers in cfg.personality_markers.items():
                pers[name] += sum(m in text for m in markers)
        lengths = [len(_EMOJI.sub("", t)) for t in own if t] or [0]
        n = max(1, len(own))
        return HistoryStats(
            category_counts=dict(cats),
            median_length=float(np.median(lengths)),
            emoji_share=sum(bool(_EMOJI.search(t)) for t in own) / n,
            exclaim_share=sum(("！" in t or "!" in t) for t in own) / n,
            question_share=sum(("？" in t or "?" in t) for t in own) / n,
            polarity=polarity,
            category_polarity={c: float(np.mean(v)) for c, v in cat_pol.items()},
            openers=openers,
            personality_hits=dict(pers),
        )

    # -- the five items ------------------------------------------------------------------------------------

    def _interests(self, stats: HistoryStats, posts: Sequence[Post]) -> tuple[str, list[str]]:
        cfg = self.config
        ranked = sorted(
            stats.category_counts.items(), key=lambda kv: (-kv[1], list(cfg.category_keywords).index(kv[0]))
        )
        top = [c for c, _ in ranked[: cfg.n_interests]]
        if top:
            return "、".join(cfg.category_names.get(c, c) for c in top), top
        import jieba.analyse

        text = " ".join(_HASHTAG.sub(" ", p.full_text) for p in posts)
        words = jieba.analyse.extract_tags(text, topK=cfg.n_interests) if text.strip() else []
        return "、".join(words) or "日常生活", []

    def _values(self, stats: HistoryStats, top: list[str], posts: Sequence[Post]) -> ValueProfile | None:
        profiles = self.config.value_profiles
        if not profiles:
            return None
        text = " ".join(p.text for p in posts)
        neutral_share = stats.polarity.count(0) / len(stats.polarity) if stats.polarity else 1.0
        scores = []
        for prof in profiles:
            marker = sum(text.count(m) for m in prof.markers)
            agree = sum(prof.stance.get(c, 0.0) * v for c, v in stats.category_polarity.items())
            overlap = len(set(prof.interests) & set(top)) / max(1, len(top))
            calm = 2.0 * (neutral_share - 0.4) if not prof.stance else 0.0
            scores.append(2.0 * marker + agree + overlap + calm)
        return profiles[int(np.argmax(scores))]

    def _personality(self, stats: HistoryStats) -> str:
        hits = stats.personality_hits
        if hits and max(hits.values()) > 0:
            return max(hits, key=lambda k: (hits[k], -list(hits).index(k)))
        polar = sum(1 for x in stats.polarity if x) / max(1, len(stats.polarity))
        if polar > 0.6 and stats.exclaim_share > 0.5:
            return "直率敢言"
        if stats.emoji_share > 0.5:
            return "幽默风趣"
        if stats.question_share > 0.5:
            return "理性严谨"
        return "温和友善"

    def _style(self, stats: HistoryStats) -> str:
        lo, hi = self.config.length_thresholds
        parts = ["简短" if stats.median_length < lo else "长篇" if stats.median_length >= hi else "适中"]
        if stats.emoji_share >= self.config.emoji_threshold:
            parts.append("爱用表情")
        catch = [w for w, k in stats.openers.most_common() if k >= self.config.min_catch_count]
        if catch:
            parts.append(f"常说“{catch[0]}”")
        elif stats.exclaim_share > 0.6:
            parts.append("爱用感叹号")
        elif stats.question_share > 0.6:
            parts.append("常用反问")
        return _fit("，".join(parts))

    def analyse(self, user_name: str, posts: Sequence[Post]) -> tuple[Persona, HistoryStats]:
        """Persona and the statistics behind it (for notebooks that show *why*)."""
        stats = self.measure(posts)
        interests, top = self._interests(stats, posts)
        profile = self._values(stats, top, posts)
        # tone: mean polarity minus what the value profile's stance already explains
        expected = [profile.stance.get(c, 0.0) for c in stats.category_polarity] if profile else []
        w = self.config.tone_stance_weight
        resid = (np.mean(stats.polarity) if stats.polarity else 0.0) - w * (
            np.mean(expected) if expected else 0.0
        )
        thr = self.config.tone_threshold
        tone = "积极" if resid > thr else "消极" if resid < -thr else "中性"
        persona = Persona(
            interests=_fit(interests),
            language_style=self._style(stats),
            emotional_tone=tone,
            personality=_fit(self._personality(stats)),
            values=_fit(profile.phrase if profile else "未知"),
        )
        return persona, stats

    def extract(self, user_name: str, posts: Sequence[Post]) -> Persona:
        return self.analyse(user_name, posts)[0]


def _fit(text: str, max_chars: int = MAX_ITEM_CHARS) -> str:
    return text if len(text) <= max_chars else text[:max_chars]
