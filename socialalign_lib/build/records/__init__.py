"""SocialAlign instruction records with spans: the template, the chat/token form, and the dataset.

* :mod:`.template` — the official instruction template, rendered piece by piece so the user block's and the news
  text's **character** spans are known by construction; the official inference-time ablations.
* :mod:`.chat` — the chat-templated prompt and its **token** spans (PAC-LoRA's gate inputs):
  :func:`prompt_ids_with_spans` for generation, :func:`build_chat_example` for training.
* :mod:`.dataset` — cases × variants → records (retrieval + persona + template) → ``DatasetDict``, JSONL export.

Span units (docs/design.md#span-units): a record's ``user_span`` / ``news_span`` are character offsets into its
``instruction``; a tokenised example's fields of the same names are token offsets into its ``input_ids``
(:data:`CHAR_SPAN_FIELDS`, :data:`TOKEN_SPAN_FIELDS`).
"""

from __future__ import annotations

from socialalign_lib.exports import forward_names

from .chat import (
    SPAN_SCHEMES,
    TOKEN_SPAN_FIELDS,
    ChatConfig,
    build_chat_example,
    chat_prompt,
    official_news_block,
    prompt_ids_with_spans,
    resolve_spans,
    spans_from_offsets,
    token_spans,
)
from .dataset import build_dataset, build_records, export_jsonl, record_features
from .template import (
    CHAR_SPAN_FIELDS,
    INFERENCE_ABLATIONS,
    SPLITS,
    SYSTEM_PROMPT,
    VARIANTS,
    RecordError,
    official_inference_ablation,
    render_history_item,
    render_instruction,
    render_instruction_parts,
    render_parts_record,
    render_persona,
    render_record,
)

__all__ = [
    "CHAR_SPAN_FIELDS",
    "INFERENCE_ABLATIONS",
    "SPAN_SCHEMES",
    "SPLITS",
    "SYSTEM_PROMPT",
    "TOKEN_SPAN_FIELDS",
    "VARIANTS",
    "ChatConfig",
    "RecordError",
    "build_chat_example",
    "build_dataset",
    "build_records",
    "chat_prompt",
    "export_jsonl",
    "official_inference_ablation",
    "official_news_block",
    "prompt_ids_with_spans",
    "record_features",
    "render_history_item",
    "render_instruction",
    "render_instruction_parts",
    "render_parts_record",
    "render_persona",
    "render_record",
    "resolve_spans",
    "spans_from_offsets",
    "token_spans",
]

_SUBMODULES = ("template", "chat", "dataset")


# private helpers of the old flat module (``_SpanWriter``, ``_redact`` …), found in the submodule that holds them
__getattr__ = forward_names(__name__, [f"{__name__}.{sub}" for sub in _SUBMODULES], own_only=True)
