"""The persona backends that ask a language model: an OpenAI-compatible endpoint and a local ``transformers`` model.

Both send the official prompt (:mod:`.prompt`) and parse the five items with the one persona parser
(``persona_text.parse_persona``); both return a :class:`~socialalign_lib.schema.Persona`, as the offline
statistical backend (:mod:`.statistical`) does, so :class:`~.extractor.PersonaExtractor` runs any of them.

* :class:`OpenAIPersonaBackend` — any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama…); the API key is read
  from the environment at request time, never stored, logged or cached.
* :class:`HFPersonaBackend` — a local causal LM through ``transformers`` ``generate`` and its chat template.

``httpx``, ``torch`` and ``transformers`` are imported inside the methods that need them: building a dataset with
the statistical backend must not load them.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from socialalign_lib.data.persona_text import MAX_ITEM_CHARS, PersonaError, PersonaParseError, parse_persona
from socialalign_lib.data.schema import Persona, Post

from .prompt import PROMPT_VERSION, build_persona_messages

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------------
# Errors
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
            log.info(
                "persona items %s were longer than %d characters and were cut", truncated, MAX_ITEM_CHARS
            )
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
    the variable is set (an exported GPT-4 key must not reach whatever server ``base_url`` names).
    ``temperature=None`` sends no sampling parameters,
    i.e. the endpoint's defaults, as the official script does.
    """

    model: str = (
        "gpt-4-0125-preview"  # the served model's name (vLLM: the --served-model-name; Ollama: the tag)
    )
    base_url: str = "https://api.openai.com"  # the server root or its /v1 (e.g. http://localhost:8000/v1)
    api_key_env: str = "OPENAI_API_KEY"  # the environment variable holding the key (never the key itself)
    require_key: bool = (
        True  # send the key from api_key_env (https or this machine only); False: send none (vLLM, Ollama)
    )
    temperature: float | None = (
        None  # None: send no sampling parameters (the endpoint's defaults, as upstream)
    )
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

    def __init__(
        self,
        config: OpenAIConfig | None = None,
        transport: Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
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
            raise PersonaUnavailableError(
                f"no API key: set the environment variable {self.config.api_key_env} "
                "(or pass --no-require-key for a server that needs none)"
            )
        if not key_safe_url(self.url):
            raise PersonaUnavailableError(
                f"{self.url}: refusing to send the API key over plain http to a host other "
                "than this machine; use https, or --no-require-key if it needs no key"
            )
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
            raise PersonaUnavailableError(
                _redact(f"{url}: cannot reach the endpoint ({type(exc).__name__}: {exc})", key)
            ) from None
        if resp.status_code in (401, 403):
            raise PersonaUnavailableError(
                _redact(
                    f"{url}: HTTP {resp.status_code}, the server refused the request "
                    f"(check the key in {self.config.api_key_env}): {resp.text[:200]}",
                    key,
                )
            )

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
                        raise PersonaBackendError(
                            f"{self.url}: unexpected response shape ({exc!r})"
                        ) from None
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                if resp.status_code in FATAL_STATUS:  # wrong key or wrong URL: the same for every user
                    raise PersonaUnavailableError(_redact(f"{self.url}: {last}", key))
                if resp.status_code not in RETRY_STATUS:
                    raise PersonaBackendError(_redact(f"{self.url}: {last}", key))
                retry_after = resp.headers.get("Retry-After")
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    wait = min(cfg.backoff_max_s, float(retry_after))
            if attempt < cfg.max_retries:
                log.warning(
                    "persona request to %s failed (%s); retry %d/%d in %.1fs",
                    self.url,
                    _redact(last, key),
                    attempt + 1,
                    cfg.max_retries,
                    wait,
                )
                self._sleep(wait)
        raise PersonaUnavailableError(
            _redact(f"{self.url}: giving up after {cfg.max_retries + 1} attempts: {last}", key)
        )


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
    def from_pretrained(
        cls, path: str | os.PathLike, config: HFGenerationConfig | None = None
    ) -> HFPersonaBackend:
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
        pad = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id
        )
        with torch.no_grad():
            out = self.model.generate(**enc, pad_token_id=pad, **kwargs)
        # decode_complete: no U+FFFD from a character cut at max_new_tokens. Function-local on purpose: the build
        # stage sits below generation (socialllm imports the records back, and loads torch/peft); only this
        # local-model backend needs it, and only when it generates.
        from socialalign_lib.generate.decode import decode_complete

        return decode_complete(self.tokenizer, out[0, enc["input_ids"].shape[1] :])
