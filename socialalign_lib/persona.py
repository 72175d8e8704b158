"""Persona extraction: the paper's five-item user persona, behind one interface with three backends.

SocialAlign asks ``gpt-4-0125-preview`` for a persona of five numbered items (兴趣话题, 语言风格, 情感基调,
性格特征, 价值观; each ≤ 20 characters) from the user name and the 5 retrieved history posts (docs/methods.md#persona-extraction).
Offline we cannot call GPT-4, and a course must still run, so every backend returns the same
:class:`~socialalign_lib.schema.Persona`:

* :class:`OpenAIPersonaBackend` — any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama…) with the
  official Chinese prompt; the API key is read from the environment at request time, never stored, logged
  or cached.
* :class:`HFPersonaBackend` — a local causal LM through ``transformers`` ``generate`` and its chat template.
* :class:`StatisticalPersonaBackend` — no model at all: the five items are derived from the history
  (keyword/topic counts, length/emoji/punctuation/catch-phrase statistics, lexicon sentiment, and
  documented heuristics for personality and values).

:class:`PersonaExtractor` adds what a long run needs: a JSONL disk cache keyed by user id + a hash of the
posts used + the backend's fingerprint (a second run makes no backend call), retries, and a recorded
failure (with the error and the raw model output) for every user that could not be parsed — never a
silent drop. :func:`persona_recovery` scores extracted personas against the embedded world's latent truth,
next to chance baselines, so a notebook can show how much of a user each backend really recovers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .clean import HASHTAG as _HASHTAG
from .persona_text import MAX_ITEM_CHARS, PersonaError, PersonaParseError, parse_persona
from .schema import Persona, Post, User
from .world import lexicon as lx

if TYPE_CHECKING:  # imported lazily: torch/transformers are heavy and only the HF backend needs them
    from .world import World

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------------
# The official prompt (docs/methods.md#persona-extraction, exact wording; the system prompt keeps its leading/trailing newline)
# --------------------------------------------------------------------------------------------------------

PERSONA_SYSTEM_PROMPT = "\n你是一个微博平台的用户分析师，负责从用户信息和历史博文中抽取用户特征，生成用户画像。\n"

PERSONA_USER_TEMPLATE = """
你的任务是基于以下用户名和该用户的历史博文，生成该用户的详细用户画像。请从以下几个维度进行刻画：

1. 兴趣话题：用户关注的主题、喜欢讨论的话题、常提及的领域。
2. 语言风格：用户常用的表达方式、口头禅、语气（如幽默、正式、随意等）。
3. 情感基调：用户在博文中表现出的情感倾向，通常是积极的、消极的还是中立的。
4. 性格特征：用户在博文中体现的性格特征，如乐观、悲观、独立等。
5. 价值观：用户在博文中体现的价值观，如重视环保、关注社会公平等。

请根据以上格式带数字标号分项列举，精简地对该用户做用户画像，以便更好地预测该用户对某一新闻话题可能发表的博文。每项不超过20字。

请注意，不需要预测用户对特定新闻的具体观点；无需提示词，直接输出用户画像即可；不要使用Markdown格式。

用户信息：
用户名：{username}

历史博文：
{history}
"""

PROMPT_VERSION = hashlib.sha256((PERSONA_SYSTEM_PROMPT + PERSONA_USER_TEMPLATE).encode()).hexdigest()[:8]
"""Part of every LLM backend's fingerprint: editing the prompt invalidates cached personas."""


def build_persona_messages(user_name: str, posts: Sequence[Post], max_posts: int = 5) -> list[dict[str, str]]:
    """The official chat messages for one user: system analyst prompt + the filled user prompt.

    Posts are rendered with :attr:`Post.full_text` (a repost reads "该用户转发了微博: X, 并评论说: Y").
    The official template has exactly five numbered slots; with fewer posts we number what there is.
    """
    history = "\n".join(f"{i}. {p.full_text}" for i, p in enumerate(posts[:max_posts], 1))
    user = PERSONA_USER_TEMPLATE.format(username=user_name, history=history).strip()
    return [{"role": "system", "content": PERSONA_SYSTEM_PROMPT}, {"role": "user", "content": user}]


# --------------------------------------------------------------------------------------------------------
# Errors and parsing
# --------------------------------------------------------------------------------------------------------


class PersonaBackendError(PersonaError):
    """The backend could not produce an answer (HTTP error after retries, missing key, bad response)."""


class PersonaUnavailableError(PersonaBackendError):
    """The backend cannot answer *anyone*: unreachable endpoint, missing or refused key, retries exhausted on
    a server error. Unlike a failure that belongs to one user, it is never cached as that user's outcome (a
    rerun asks again), and :class:`PersonaExtractor` stops the run after a few in a row instead of spending
    every user's retries on a dead endpoint."""


# --------------------------------------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------------------------------------


class PersonaBackend(Protocol):
    """What :class:`PersonaExtractor` needs from a backend."""

    @property
    def fingerprint(self) -> str:
        """Identifies backend + model + prompt version; part of the cache key (never contains secrets)."""
        ...

    def extract(self, user_name: str, posts: Sequence[Post]) -> Persona:
        """The five items for one user from ``posts``; raises :class:`PersonaError` on failure."""
        ...


class _ChatBackend:
    """Shared by the LLM backends: official prompt in, ``parse_persona`` out."""

    max_posts: int = 5

    def complete(self, messages: list[dict[str, str]]) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def extract(self, user_name: str, posts: Sequence[Post]) -> Persona:
        raw = self.complete(build_persona_messages(user_name, posts, self.max_posts))
        persona, truncated = parse_persona(raw)
        if truncated:
            log.info("persona items %s were longer than %d characters and were cut", truncated, MAX_ITEM_CHARS)
        return persona


# --------------------------------------------------------------------------------------------------------
# (a) OpenAI-compatible endpoint
# --------------------------------------------------------------------------------------------------------

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})
"""Answers that say the key or the URL is wrong: no user can succeed, so the run stops (not cached per user)."""


@dataclass
class OpenAIConfig:
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint.

    ``api_key_env`` names the environment variable holding the key (the key itself is never a field, so
    it cannot end up in a repr, a log line or a cache file). The key is sent only when asked for
    (``require_key=True``, the default) and never over plain ``http://`` to a host other than this machine;
    ``require_key=False`` suits local servers (vLLM, Ollama) that need none, and then no key is sent even if
    the variable is set (an exported GPT-4 key must not reach whatever server ``base_url`` names). ``temperature=None`` sends no sampling parameters,
    i.e. the endpoint's defaults, as the official script does.
    """

    model: str = "gpt-4-0125-preview"  # the served model's name (vLLM: the --served-model-name; Ollama: the tag)
    base_url: str = "https://api.openai.com"  # the server root or its /v1 (e.g. http://localhost:8000/v1)
    api_key_env: str = "OPENAI_API_KEY"  # the environment variable holding the key (never the key itself)
    require_key: bool = True  # send the key from api_key_env (https or this machine only); False: send none (vLLM, Ollama)
    temperature: float | None = None  # None: send no sampling parameters (the endpoint's defaults, as upstream)
    max_tokens: int | None = 300  # answer length cap; None sends none
    timeout_s: float = 60.0  # per request
    max_retries: int = 5  # extra attempts on transport errors and 408/409/429/5xx
    backoff_s: float = 1.0  # attempt k waits about backoff_s * 2**k (jittered, or Retry-After)
    backoff_max_s: float = 30.0  # the longest wait between attempts
    max_posts: int = 5  # history posts in the prompt (the official template has five)


class OpenAIPersonaBackend(_ChatBackend):
    """Persona from an OpenAI-compatible chat endpoint, with retries and exponential backoff.

    Retries transport errors and 408/409/429/5xx (honouring ``Retry-After``), up to ``max_retries``; other
    statuses fail at once (a 401 will not fix itself). ``transport`` lets tests plug in an httpx mock.
    """

    def __init__(self, config: OpenAIConfig | None = None, transport: Any | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        import httpx

        self.config = config or OpenAIConfig()
        self.max_posts = self.config.max_posts
        self._client = httpx.Client(timeout=self.config.timeout_s, transport=transport)
        self._sleep = sleep

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"OpenAIPersonaBackend(model={self.config.model!r}, base_url={self.config.base_url!r})"

    @property
    def fingerprint(self) -> str:
        return f"openai:{self.config.model}:{self.config.temperature}:prompt-{PROMPT_VERSION}"

    @property
    def url(self) -> str:
        base = self.config.base_url.rstrip("/")
        return base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")

    def _headers(self) -> tuple[dict[str, str], str | None]:
        headers = {"Content-Type": "application/json"}
        if not self.config.require_key:
            return headers, None  # not asked for a key: never send one, whatever the environment holds
        key = (os.environ.get(self.config.api_key_env) or "").strip()
        if not key:
            raise PersonaUnavailableError(f"no API key: set the environment variable {self.config.api_key_env} "
                                          "(or pass --no-require-key for a server that needs none)")
        if not key_safe_url(self.url):
            raise PersonaUnavailableError(f"{self.url}: refusing to send the API key over plain http to a host other "
                                          "than this machine; use https, or --no-require-key if it needs no key")
        headers["Authorization"] = f"Bearer {key}"
        return headers, key

    def probe(self) -> None:
        """One cheap request (``GET /v1/models``, no retries) before a run: a missing key, a refused key or an
        unreachable endpoint fails here, in seconds, instead of once per user. Any other answer (even a 404
        from a server without that route) shows the server is there."""
        import httpx

        headers, key = self._headers()
        url = self.url.rsplit("/chat/completions", 1)[0] + "/models"
        try:
            resp = self._client.get(url, headers=headers, timeout=min(self.config.timeout_s, 10.0))
        except httpx.HTTPError as exc:
            raise PersonaUnavailableError(_redact(f"{url}: cannot reach the endpoint ({type(exc).__name__}: {exc})",
                                                  key)) from None
        if resp.status_code in (401, 403):
            raise PersonaUnavailableError(_redact(f"{url}: HTTP {resp.status_code}, the server refused the request "
                                                  f"(check the key in {self.config.api_key_env}): {resp.text[:200]}",
                                                  key))

    def extract(self, user_name: str, posts: Sequence[Post]) -> Persona:
        try:
            return super().extract(user_name, posts)
        except PersonaParseError as exc:  # a server echoing the request must not put the key into the cache
            key = os.environ.get(self.config.api_key_env) if self.config.require_key else None
            raise PersonaParseError(_redact(str(exc), key), raw=_redact(exc.raw, key)) from None

    def complete(self, messages: list[dict[str, str]]) -> str:
        import httpx

        cfg = self.config
        body: dict[str, Any] = {"model": cfg.model, "messages": messages}
        if cfg.temperature is not None:
            body["temperature"] = cfg.temperature
        if cfg.max_tokens is not None:
            body["max_tokens"] = cfg.max_tokens
        headers, key = self._headers()
        last = ""
        for attempt in range(cfg.max_retries + 1):
            wait = min(cfg.backoff_max_s, cfg.backoff_s * 2**attempt) * (0.5 + random.random() / 2)
            try:
                resp = self._client.post(self.url, json=body, headers=headers)
            except httpx.HTTPError as exc:  # connection refused, timeout…
                last = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code == 200:
                    try:
                        return str(resp.json()["choices"][0]["message"]["content"])
                    except (ValueError, KeyError, IndexError, TypeError) as exc:
                        raise PersonaBackendError(f"{self.url}: unexpected response shape ({exc!r})") from None
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                if resp.status_code in FATAL_STATUS:  # wrong key or wrong URL: the same for every user
                    raise PersonaUnavailableError(_redact(f"{self.url}: {last}", key))
                if resp.status_code not in RETRY_STATUS:
                    raise PersonaBackendError(_redact(f"{self.url}: {last}", key))
                retry_after = resp.headers.get("Retry-After")
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    wait = min(cfg.backoff_max_s, float(retry_after))
            if attempt < cfg.max_retries:
                log.warning("persona request to %s failed (%s); retry %d/%d in %.1fs", self.url,
                            _redact(last, key), attempt + 1, cfg.max_retries, wait)
                self._sleep(wait)
        raise PersonaUnavailableError(_redact(f"{self.url}: giving up after {cfg.max_retries + 1} attempts: {last}",
                                              key))


def _redact(text: str, secret: str | None) -> str:
    """Belt and braces: no error text that leaves this module may contain the key."""
    return text.replace(secret, "***") if secret and text else text


def key_safe_url(url: str) -> bool:
    """May a secret travel to ``url``? Over https, yes; over plain http only to this machine (loopback)."""
    import ipaddress
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = (parts.hostname or "").lower()
    if parts.scheme != "http" or not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------------------
# (b) local Hugging Face causal LM
# --------------------------------------------------------------------------------------------------------


@dataclass
class HFGenerationConfig:
    """Generation settings for :class:`HFPersonaBackend`. Greedy by default, so a cached run is reproducible."""

    max_new_tokens: int = 160  # answer length cap in tokens
    do_sample: bool = False  # greedy (False) makes a cached run reproducible
    temperature: float = 0.7  # only when sampling
    top_p: float = 0.9  # only when sampling
    max_posts: int = 5  # history posts in the prompt (the official template has five)
    name: str = "local"  # the model's name in the cache fingerprint


class HFPersonaBackend(_ChatBackend):
    """Persona from a local ``transformers`` causal LM, prompted through its chat template.

    A tokenizer without a chat template gets a plain "system\\n\\nuser\\n\\n" rendering (documented
    fallback, for toy models). Small or random models will often not produce five items: the resulting
    :class:`PersonaParseError` carries the raw text, and :class:`PersonaExtractor` records it.
    """

    def __init__(self, model: Any, tokenizer: Any, config: HFGenerationConfig | None = None) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer  # eval: no dropout while generating
        self.config = config or HFGenerationConfig()
        self.max_posts = self.config.max_posts

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, config: HFGenerationConfig | None = None) -> HFPersonaBackend:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
        cfg = config or HFGenerationConfig(name=Path(path).name)
        return cls(model, tokenizer, cfg)

    @property
    def fingerprint(self) -> str:
        c = self.config
        sampling = f"sample-t{c.temperature}-p{c.top_p}" if c.do_sample else "greedy"
        return f"hf:{c.name}:{sampling}:{c.max_new_tokens}:prompt-{PROMPT_VERSION}"

    def render_prompt(self, messages: list[dict[str, str]]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "".join(m["content"].strip() + "\n\n" for m in messages)

    def complete(self, messages: list[dict[str, str]]) -> str:
        import torch

        prompt = self.render_prompt(messages)
        enc = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        enc = {k: v.to(self.model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        c = self.config
        kwargs: dict[str, Any] = {"max_new_tokens": c.max_new_tokens, "do_sample": c.do_sample}
        if c.do_sample:
            kwargs.update(temperature=c.temperature, top_p=c.top_p)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.no_grad():
            out = self.model.generate(**enc, pad_token_id=pad, **kwargs)
        from .socialllm import decode_complete  # no U+FFFD from a character cut at max_new_tokens

        return decode_complete(self.tokenizer, out[0, enc["input_ids"].shape[1]:])


# --------------------------------------------------------------------------------------------------------
# (c) statistical backend: no model, the five items from history statistics
# --------------------------------------------------------------------------------------------------------

_EMOJI = re.compile(r"\[[\u4e00-\u9fffA-Za-z0-9]{1,8}\]|[\U0001F300-\U0001FAFF\u2600-\u27BF]")
_CLAUSE_SPLIT = re.compile(r"[，,。！!？?~～…；;\s]+")
_SLOT = re.compile(r"\{[a-z]+\}")


def _fragments(templates: Iterable[str], min_len: int = 2) -> list[str]:
    """Literal pieces of phrase-bank templates (slots removed), usable as substring keywords."""
    out = []
    for t in templates:
        out += [f.strip("，。 ") for f in _SLOT.split(t)]
    return sorted({f for f in out if len(f) >= min_len})


def world_sentiment_lexicon() -> dict[str, list[str]]:
    """positive/negative/neutral keyword lists from the world's reply phrase banks, generic words and emoji."""
    lexicon: dict[str, list[str]] = {}
    for label, bank in (("positive", "pos"), ("negative", "neg"), ("neutral", "neu")):
        words = _fragments(str(x) for spec in lx.CATEGORIES.values() for x in spec[bank])  # type: ignore[union-attr]
        lexicon[label] = sorted(set(words) | set(lx.GENERIC[label]) | set(lx.EMOJI[label]))
    # a fragment that occurs in two polarities says nothing
    shared = {w for a in lexicon for b in lexicon if a < b for w in set(lexicon[a]) & set(lexicon[b])}
    return {k: [w for w in v if w not in shared] for k, v in lexicon.items()}


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
    (characters of the user's own text, hashtags removed) that separates 简短 / 适中 / 长篇; the defaults sit
    between the classes measured on the course world (short ≤ 21, medium 16–41, long ≥ 34 characters).
    """

    category_names: dict[str, str] = field(default_factory=lambda: {c: str(s["name"]) for c, s in lx.CATEGORIES.items()})
    category_keywords: dict[str, list[str]] = field(default_factory=lambda: {
        c: [str(s["name"]), *map(str, s["entities"])] for c, s in lx.CATEGORIES.items()})
    sentiment_lexicon: dict[str, list[str]] = field(default_factory=world_sentiment_lexicon)
    personality_markers: dict[str, list[str]] = field(default_factory=lambda: {
        str(s["zh"]): list(map(str, s["extra"])) for s in lx.PERSONALITIES.values()})  # type: ignore[arg-type]
    value_profiles: list[ValueProfile] = field(default_factory=lambda: [
        ValueProfile(str(s["zh"]), dict(s["stance"]), list(s["interests"]), [str(s["identity"])])  # type: ignore[arg-type]
        for s in lx.ARCHETYPES.values()])
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
      pessimist. (0.5 and 0.15 were the best pair on a small grid over the course world; the gain over no
      correction is a few points: with ~12 posts the baseline is only weakly identifiable.)
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
        cfg = json.dumps({k: v for k, v in self.config.__dict__.items() if k != "value_profiles"}, sort_keys=True,
                         ensure_ascii=False, default=str)
        cfg += json.dumps([p.__dict__ for p in self.config.value_profiles], sort_keys=True, ensure_ascii=False)
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
        ranked = sorted(stats.category_counts.items(), key=lambda kv: (-kv[1], list(cfg.category_keywords).index(kv[0])))
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
        resid = (np.mean(stats.polarity) if stats.polarity else 0.0) - w * (np.mean(expected) if expected else 0.0)
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


# --------------------------------------------------------------------------------------------------------
# The extractor: cache, retries, recorded failures
# --------------------------------------------------------------------------------------------------------


def history_hash(user_name: str, posts: Sequence[Post]) -> str:
    """Hash of exactly what a backend sees: the name and the posts' ids and texts (order matters)."""
    payload = json.dumps([user_name, [(p.post_id, p.full_text) for p in posts]], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass
class PersonaRecord:
    """The outcome for one user: a persona, or the error (and raw model output) that prevented one."""

    user_id: str
    history_hash: str
    backend: str
    persona: Persona | None = None
    error: str | None = None
    raw: str | None = None
    attempts: int = 1
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.persona is not None

    @property
    def key(self) -> str:
        return f"{self.user_id}|{self.history_hash}|{self.backend}"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "user_id": self.user_id, "history_hash": self.history_hash, "backend": self.backend,
                "status": "ok" if self.ok else "failed",
                "persona": self.persona.to_dict() if self.persona else None,
                "error": self.error, "raw": self.raw, "attempts": self.attempts}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PersonaRecord:
        return cls(user_id=d["user_id"], history_hash=d["history_hash"], backend=d["backend"],
                   persona=Persona.from_dict(d["persona"]) if d.get("persona") else None, error=d.get("error"),
                   raw=d.get("raw"), attempts=int(d.get("attempts", 1)), cached=True)


class PersonaExtractor:
    """Run a backend over many users with a resumable JSONL cache.

    The cache file ``{cache_dir}/personas.jsonl`` gets one line per finished user, appended as soon as the
    user is done, so an interrupted run loses at most the user in flight; a torn last line (a crash during
    the write) is dropped on load and the file rewritten atomically. Failures are cached too, with the
    error and the raw answer, and are not retried on the next run unless ``retry_failed`` — so a second run
    calls the backend for nobody. Within one run each user gets ``max_attempts`` tries (useful for sampling
    LLMs whose answer sometimes does not parse).

    ``extract_users(..., max_workers=N)`` keeps up to N requests in flight (threads: the work is waiting on an
    HTTP endpoint such as vLLM or Ollama, which batch concurrent requests). Cache appends and counters are
    serialised by a lock, so the cache stays one whole line per user and resumes the same way.

    One writer per cache file: a run holds an OS lock on it (``io.exclusive_output``), and a second process
    on the same folder is refused with :class:`io.OutputLockedError` instead of interleaving its lines.
    A backend that cannot answer anyone (:class:`PersonaUnavailableError`: dead endpoint, missing or refused
    key) is probed once before the run (``backend.probe()`` where it has one); its failures are not cached,
    and ``max_unavailable`` of them in a row stop the run with that error (a rerun resumes).
    """

    CACHE_NAME = "personas.jsonl"

    def __init__(self, backend: PersonaBackend, cache_dir: str | os.PathLike | None = None, max_attempts: int = 2,
                 retry_failed: bool = False, backoff_s: float = 0.0, max_unavailable: int = 3) -> None:
        self.backend = backend
        self.cache_path = Path(cache_dir) / self.CACHE_NAME if cache_dir is not None else None
        self.max_attempts = max(1, max_attempts)
        self.retry_failed = retry_failed
        self.backoff_s = backoff_s
        self.max_unavailable = max(1, max_unavailable)
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._writing = False  # True while this extractor holds the cache file's lock
        self._unavailable: list[str] = []  # consecutive PersonaUnavailableError messages
        self._cache: dict[str, PersonaRecord] = self._load()

    def _load(self, repair: bool = False) -> dict[str, PersonaRecord]:
        if self.cache_path is None or not self.cache_path.exists():
            return {}
        from .io import read_jsonl

        # Only the lock holder may cut a torn last line (then it can only be a dead run's); a reader without the
        # lock ignores it, as it may be another process's line being written right now.
        rows = read_jsonl(self.cache_path, required=("key", "user_id", "history_hash", "backend"),
                          torn_tail="repair" if repair else "drop")
        return {r["key"]: PersonaRecord.from_dict(r) for r in rows}

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the cache file's lock (re-entrant within this extractor) and read the cache afresh under it."""
        if self.cache_path is None or self._writing:
            yield
            return
        from .io import exclusive_output

        with exclusive_output(self.cache_path, "persona cache"):
            self._writing = True
            try:
                self._cache = self._load(repair=True)
                yield
            finally:
                self._writing = False

    def _save(self, record: PersonaRecord) -> None:
        from .io import append_jsonl

        with self._lock:
            self._cache[record.key] = record
            if self.cache_path is not None:
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                append_jsonl(self.cache_path, [record.to_dict()])

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def _cached(self, key: str) -> PersonaRecord | None:
        hit = self._cache.get(key)
        return hit if hit is not None and (hit.ok or not self.retry_failed) else None

    def extract(self, user_id: str, user_name: str, posts: Sequence[Post]) -> PersonaRecord:
        """One user's persona from ``posts`` (the 5 retrieved posts as in the paper, or a whole history)."""
        with self.writing():
            return self._extract(user_id, user_name, posts)

    def _extract(self, user_id: str, user_name: str, posts: Sequence[Post]) -> PersonaRecord:
        rec = PersonaRecord(user_id, history_hash(user_name, posts), self.backend.fingerprint)
        hit = self._cached(rec.key)
        if hit is not None:
            self._count("hits")
            hit.cached = True
            return hit
        if len(self._unavailable) >= self.max_unavailable:  # the run is stopping: do not ask a dead backend
            rec.error = f"PersonaUnavailableError: skipped, {self._unavailable[-1]}"
            return rec
        self._count("misses")
        for attempt in range(1, self.max_attempts + 1):
            rec.attempts = attempt
            try:
                rec.persona = self.backend.extract(user_name, posts)
                rec.error = rec.raw = None
                break
            except PersonaUnavailableError as exc:  # nobody's fault but the endpoint's: not this user's outcome
                rec.error = f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self._unavailable.append(str(exc))
                    self.stats["unavailable"] += 1
                log.warning("persona for %s: backend unavailable: %s", user_id, exc)
                return rec  # not cached: a rerun asks again
            except PersonaError as exc:
                rec.error = f"{type(exc).__name__}: {exc}"
                rec.raw = getattr(exc, "raw", None)
                log.info("persona for %s failed (attempt %d/%d): %s", user_id, attempt, self.max_attempts, rec.error)
                if attempt < self.max_attempts and self.backoff_s:
                    time.sleep(self.backoff_s * 2 ** (attempt - 1))
        with self._lock:
            self._unavailable.clear()
        self._count("ok" if rec.ok else "failed")
        self._save(rec)
        return rec

    def extract_users(self, users: Iterable[User], posts_for: Callable[[User], Sequence[Post]] | None = None,
                      progress: bool = False, max_workers: int = 1) -> dict[str, PersonaRecord]:
        """Records for many users, in the users' order; ``posts_for(user)`` picks the posts (default: the whole
        history). ``max_workers`` > 1 runs that many users at once in threads (for an HTTP backend; a local HF
        model gains nothing). The cache file then lists users in completion order, which its keys make harmless.
        """
        from concurrent.futures import ThreadPoolExecutor

        from tqdm.auto import tqdm

        users = list(users)
        with self.writing():
            posts = [list(posts_for(u) if posts_for else u.history) for u in users]
            todo = sum(self._cached(PersonaRecord(u.user_id, history_hash(u.screen_name, p),
                                                  self.backend.fingerprint).key) is None
                       for u, p in zip(users, posts, strict=True))
            if todo and hasattr(self.backend, "probe"):
                self.backend.probe()  # a dead endpoint or a missing key fails here, once, not once per user
            self._unavailable.clear()
            bar = tqdm(total=len(users), desc=f"personas ({self.backend.fingerprint.split(':')[0]})",
                       disable=not progress)

            def one(i: int) -> PersonaRecord:
                rec = self._extract(users[i].user_id, users[i].screen_name, posts[i])
                bar.update(1)
                return rec

            try:
                if max_workers <= 1:
                    recs = [one(i) for i in range(len(users))]
                else:
                    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="persona") as pool:
                        recs = list(pool.map(one, range(len(users))))
            finally:
                bar.close()
            if len(self._unavailable) >= self.max_unavailable:
                done = sum(not (r.error or "").startswith("PersonaUnavailableError") for r in recs)
                raise PersonaUnavailableError(
                    f"stopped after {len(self._unavailable)} users in a row could not reach the backend "
                    f"({self._unavailable[-1]}); {done} of {len(users)} users are done and cached, "
                    "run again to resume")
        return {u.user_id: r for u, r in zip(users, recs, strict=True)}


def personas_of(records: dict[Any, PersonaRecord]) -> dict[Any, Persona]:
    """The successful personas only (failures stay visible in ``records``)."""
    return {uid: r.persona for uid, r in records.items() if r.persona is not None}


def persona_posts(user: User, query: str | None = None, k: int = 5, retrieval_cfg: Any | None = None) -> list[Post]:
    """The posts a persona is extracted from: BM25 top-``k`` for ``query`` (the paper: the news), or, for a
    single persona per user with no news at hand, the ``k`` most recent posts."""
    if query is None:
        return sorted(user.history, key=lambda p: (p.created_at, p.post_id))[-k:]
    from .retrieval import RetrievalConfig, retrieve_history

    return [p for p, _ in retrieve_history(user.history, query, retrieval_cfg or RetrievalConfig(k=k))]


def personas_per_topic(cases: Iterable[Any], extractor: PersonaExtractor, retrieval_cfg: Any | None = None,
                       history_filter: Callable[[User], list[Post]] | None = None,
                       progress: bool = False) -> dict[tuple[str, str], PersonaRecord]:
    """The official persona protocol: one persona per (user, topic), written from the posts retrieved for *that*
    news — the user's history (``history_filter`` applied, the reply itself removed) ranked by BM25 against the
    news, top ``retrieval_cfg.k`` (default 5) — i.e. the same posts ``records.build_records`` puts into that
    prompt with the same ``retrieval_cfg`` and filter. Keyed ``(user_id, topic_id)``; pass
    :func:`personas_of` of it as ``persona_by_user_topic`` to ``records.build_dataset``. Ours (one persona per
    user from the ``k`` most recent posts, :func:`persona_posts` without a query) costs one extraction per user
    instead of one per case."""
    from tqdm.auto import tqdm

    from .retrieval import RetrievalConfig, retrieve_history

    cfg = retrieval_cfg or RetrievalConfig(k=5)
    out: dict[tuple[str, str], PersonaRecord] = {}
    for case in tqdm(list(cases), desc="personas per (user, topic)", disable=not progress):
        key = (case.user.user_id, case.topic.topic_id)
        if key in out:
            continue
        pool = history_filter(case.user) if history_filter else case.user.history
        history = [p for p in pool if p.post_id != case.response.post_id]
        posts = [p for p, _ in retrieve_history(history, case.topic.news, cfg)]
        out[key] = extractor.extract(case.user.user_id, case.user.screen_name, posts)
    return out


# --------------------------------------------------------------------------------------------------------
# Recovery: how much of the world's latent truth does a persona recover?
# --------------------------------------------------------------------------------------------------------

CATEGORY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "tech": ("科技", "数码", "互联网", "人工智能", "AI", "芯片"),
    "prices": ("物价", "价格", "房价", "房租", "油价", "消费", "生活成本"),
    "sports": ("体育", "运动", "足球", "篮球", "赛事", "比赛"),
    "entertainment": ("娱乐", "影视", "明星", "综艺", "电影", "音乐", "追星"),
    "education": ("教育", "学校", "升学", "高考", "孩子学习"),
    "health": ("健康", "医疗", "看病", "医保", "养生"),
    "environment": ("环境", "环保", "生态", "空气"),
    "transport": ("交通", "出行", "通勤", "地铁", "高铁"),
    "food": ("美食", "吃", "餐饮", "饮食", "小吃"),
    "society": ("社会", "民生", "社会事件", "公益"),
}
TONE_WORDS: dict[str, tuple[str, ...]] = {
    "optimist": ("积极", "乐观", "正面", "正能量"),
    "pessimist": ("消极", "悲观", "负面", "不满", "愤怒"),
    "even": ("中性", "中立", "平和", "客观", "平稳"),
}
PERSONALITY_WORDS: dict[str, tuple[str, ...]] = {
    "rational": ("理性", "严谨", "冷静", "客观", "务实"),
    "humorous": ("幽默", "风趣", "诙谐", "搞笑", "调侃"),
    "emotional": ("感性", "细腻", "多愁善感", "共情", "敏感"),
    "blunt": ("直率", "敢言", "犀利", "直接", "尖锐", "直爽"),
    "mild": ("温和", "友善", "平和", "包容", "随和"),
}
VALUE_WORDS: dict[str, tuple[str, ...]] = {
    "tech_optimist": ("科技", "进步", "创新"),
    "frugal_worker": ("务实", "节俭", "民生", "生活成本"),
    "sports_patriot": ("运动", "集体荣誉", "爱国", "体育"),
    "fan_culture": ("偶像", "追求快乐", "追星", "粉丝"),
    "anxious_parent": ("教育", "家庭", "孩子", "安全"),
    "eco_activist": ("环保", "可持续", "生态"),
    "foodie": ("美食", "享受生活", "吃"),
    "neutral_observer": ("客观", "中立", "不轻易"),
    "civic_critic": ("公平", "不公", "批评", "正义"),
}
LENGTH_WORDS: dict[str, tuple[str, ...]] = {
    "short": ("简短", "简洁", "短小", "言简意赅", "短"),
    "long": ("长篇", "较长", "详细", "长文", "长"),
    "medium": ("适中", "中等", "一般长度"),
}
_NO_EMOJI = re.compile(r"(不|少|很少|极少|没有|无)(用|使用|爱用)?(表情|emoji)")


def _first_label(text: str, words: dict[str, tuple[str, ...]]) -> str | None:
    """The label whose keyword appears first in ``text`` (longer keywords win ties at one position)."""
    best: tuple[int, int, str] | None = None
    for label, kws in words.items():
        for w in kws:
            i = text.find(w)
            if i >= 0 and (best is None or (i, -len(w)) < (best[0], best[1])):
                best = (i, -len(w), label)
    return best[2] if best else None


def _best_label(text: str, words: dict[str, tuple[str, ...]]) -> str | None:
    """The label with the most keyword hits; ties go to the earliest hit."""
    scores = {k: sum(w in text for w in v) for k, v in words.items()}
    if not any(scores.values()):
        return None
    top = max(scores.values())
    return _first_label(text, {k: v for k, v in words.items() if scores[k] == top})


def interest_categories(text: str) -> list[str]:
    """Category keys named in an interests item, in order of first mention (category names and synonyms)."""
    pos = {}
    for cat, words in CATEGORY_SYNONYMS.items():
        idx = [text.find(w) for w in words if w in text]
        if idx:
            pos[cat] = min(idx)
    return sorted(pos, key=pos.get)  # type: ignore[arg-type]


def decode_persona(persona: Persona) -> dict[str, Any]:
    """Map a persona's free text back to the world's latent vocabulary (None where nothing is recognised).

    Works on any backend's output: keyword dictionaries with synonyms, not exact strings, so a GPT-4 answer
    such as "科技、娱乐新闻" or "情感倾向：通常是积极的" is read the same way as the statistical backend's.
    """
    style = persona.language_style
    quoted = re.findall(r"[“\"「『]([^”\"」』]{1,12})[”\"」』]", style)
    return {
        "interests": interest_categories(persona.interests),
        "emotional_baseline": _first_label(persona.emotional_tone, TONE_WORDS),
        "length_class": _first_label(style, LENGTH_WORDS),
        "emoji": ("表情" in style or "emoji" in style.lower()) and not _NO_EMOJI.search(style),
        "catch_phrase": quoted[0] if quoted else None,
        "personality": _best_label(persona.personality, PERSONALITY_WORDS),
        "archetype": _best_label(persona.values, VALUE_WORDS),
    }


def persona_recovery(extracted: dict[str, Persona], world: World) -> dict[str, float]:
    """Score personas against the world's latent users; every score comes with its chance baseline.

    Metrics (means over the users in ``extracted`` that exist in the world):

    * ``interests_overlap@3`` — |predicted top-3 ∩ true top-3 categories| / 3. ``_chance``: a random 3 of the
      K categories (= 3/K); ``_popular``: always the 3 categories most followed in the world.
    * ``emotional_tone_acc`` (pessimist / even / optimist), ``length_acc`` (short / medium / long),
      ``emoji_acc`` (爱用表情 ⇔ true emoji rate ≥ 0.5), ``catch_phrase_acc`` (the quoted phrase is one of the
      user's catch-phrases, or none quoted when the user has none), ``personality_acc`` (5 classes),
      ``values_acc`` (the 9 value archetypes). ``_chance`` for these: always predicting the most frequent
      true class among the scored users (a stronger baseline than uniform guessing).

    ``coverage`` is the share of world users with a persona; ``n_users`` how many were scored.
    """
    cats = list(CATEGORY_SYNONYMS)
    users = [uid for uid in extracted if uid in world.latent_users]
    out: dict[str, float] = {"n_users": float(len(users)), "coverage": len(users) / max(1, len(world.latent_users))}
    if not users:
        return out
    truth = [world.latent_users[u] for u in users]
    pred = [decode_persona(extracted[u]) for u in users]
    popular = [c for c, _ in sorted(((c, sum(lu.interests.get(c, 0.0) for lu in world.latent_users.values()))
                                     for c in cats), key=lambda kv: -kv[1])[:3]]
    out["interests_overlap@3"] = float(np.mean([len(set(p["interests"][:3]) & set(t.top_interests(3))) / 3
                                                for p, t in zip(pred, truth, strict=True)]))
    out["interests_overlap@3_chance"] = 3 / len(cats)
    out["interests_overlap@3_popular"] = float(np.mean([len(set(popular) & set(t.top_interests(3))) / 3 for t in truth]))

    def acc(name: str, y_pred: list[Any], y_true: list[Any]) -> None:
        out[name] = float(np.mean([a == b for a, b in zip(y_pred, y_true, strict=True)]))
        out[name + "_chance"] = Counter(y_true).most_common(1)[0][1] / len(y_true)

    acc("emotional_tone_acc", [p["emotional_baseline"] for p in pred], [t.emotional_baseline for t in truth])
    acc("length_acc", [p["length_class"] for p in pred], [t.length_class for t in truth])
    acc("emoji_acc", [p["emoji"] for p in pred], [t.emoji_rate >= 0.5 for t in truth])
    catch_ok = [(p["catch_phrase"] in t.catch_phrases) if t.catch_phrases else p["catch_phrase"] is None
                for p, t in zip(pred, truth, strict=True)]
    out["catch_phrase_acc"] = float(np.mean(catch_ok))
    out["catch_phrase_acc_chance"] = float(np.mean([not t.catch_phrases for t in truth]))  # "never quote one"
    acc("personality_acc", [p["personality"] for p in pred], [t.personality for t in truth])
    acc("values_acc", [p["archetype"] for p in pred], [t.archetype for t in truth])
    return out


def recovery_table(report: dict[str, float]):
    """``persona_recovery``'s dict as a tidy table (metric, score, chance) for notebooks."""
    import pandas as pd

    rows = [{"metric": k, "score": v, "chance": report.get(k + "_chance", float("nan"))}
            for k, v in report.items() if not k.endswith(("_chance", "_popular")) and k not in ("n_users", "coverage")]
    return pd.DataFrame(rows)
