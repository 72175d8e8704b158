"""Persona extraction: the paper's five-item user persona, behind one interface with three backends.

SocialAlign asks GPT-4 for a persona of five numbered items from the user name and the 5 retrieved history posts
(docs/methods.md#persona-extraction). Offline we cannot call GPT-4, and a course must still run, so every backend
returns the same :class:`~socialalign_lib.schema.Persona`. One module per job:

* :mod:`.prompt` — the official extraction prompt and its version hash.
* :mod:`.backends` — :class:`OpenAIPersonaBackend` (any OpenAI-compatible endpoint; the API key comes from the
  environment only) and :class:`HFPersonaBackend` (a local ``transformers`` model).
* :mod:`.statistical` — :class:`StatisticalPersonaBackend`, no model: the items from history statistics.
* :mod:`.extractor` — :class:`PersonaExtractor`: cache, resume, atomic repair, retries, recorded failures.
* :mod:`.recovery` — :func:`persona_recovery`: how much of the embedded world's latent truth a persona recovers.

Parsing a model's answer into the five items is the one persona parser, ``socialalign_lib.persona_text`` (re-exported
here). This package never imports the world simulator nor the generation code at module level.
"""

from __future__ import annotations

from socialalign_lib.data.persona_text import MAX_ITEM_CHARS, PersonaError, PersonaParseError, parse_persona
from socialalign_lib.exports import forward_names

from .backends import (
    FATAL_STATUS,
    RETRY_STATUS,
    HFGenerationConfig,
    HFPersonaBackend,
    OpenAIConfig,
    OpenAIPersonaBackend,
    PersonaBackend,
    PersonaBackendError,
    PersonaUnavailableError,
    key_safe_url,
)
from .extractor import (
    PersonaExtractor,
    PersonaRecord,
    history_hash,
    persona_posts,
    personas_of,
    personas_per_topic,
)
from .prompt import PERSONA_SYSTEM_PROMPT, PERSONA_USER_TEMPLATE, PROMPT_VERSION, build_persona_messages
from .recovery import (
    CATEGORY_SYNONYMS,
    LENGTH_WORDS,
    PERSONALITY_WORDS,
    TONE_WORDS,
    VALUE_WORDS,
    decode_persona,
    interest_categories,
    persona_recovery,
    recovery_table,
)
from .statistical import (
    HistoryStats,
    StatisticalConfig,
    StatisticalPersonaBackend,
    ValueProfile,
    default_dictionaries,
    world_dictionaries,
    world_sentiment_lexicon,
)

__all__ = [
    "CATEGORY_SYNONYMS",
    "FATAL_STATUS",
    "LENGTH_WORDS",
    "MAX_ITEM_CHARS",
    "PERSONALITY_WORDS",
    "PERSONA_SYSTEM_PROMPT",
    "PERSONA_USER_TEMPLATE",
    "PROMPT_VERSION",
    "RETRY_STATUS",
    "TONE_WORDS",
    "VALUE_WORDS",
    "HFGenerationConfig",
    "HFPersonaBackend",
    "HistoryStats",
    "OpenAIConfig",
    "OpenAIPersonaBackend",
    "PersonaBackend",
    "PersonaBackendError",
    "PersonaError",
    "PersonaExtractor",
    "PersonaParseError",
    "PersonaRecord",
    "PersonaUnavailableError",
    "StatisticalConfig",
    "StatisticalPersonaBackend",
    "ValueProfile",
    "build_persona_messages",
    "decode_persona",
    "default_dictionaries",
    "history_hash",
    "interest_categories",
    "key_safe_url",
    "parse_persona",
    "persona_posts",
    "persona_recovery",
    "personas_of",
    "personas_per_topic",
    "recovery_table",
    "world_dictionaries",
    "world_sentiment_lexicon",
]

_SUBMODULES = ("prompt", "backends", "statistical", "extractor", "recovery")


# private helpers of the old flat module (``_SpanWriter``, ``_redact`` …), found in the submodule that holds them
__getattr__ = forward_names(__name__, [f"{__name__}.{sub}" for sub in _SUBMODULES], own_only=True)
