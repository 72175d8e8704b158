"""Generation stage: a trained SocialLLM's replies to records, resumable, from either backend.

    sampling.py    GenerationConfig and the logits processors (row-seeded sampling, stop tokens spared)
    decode.py      the decode core: prompt ids with spans → replies (generate_replies) or gates (compute_gates)
    reply_file.py  ReplyFile: one replies JSON Lines file (lock, resume, append), shared by both backends
    paths.py       replies_path / generations_path: where a run keeps its replies files
    vllm.py        the vLLM backend for plain-LoRA and base-model runs (optional)

Names load on first use (PEP 562), so the CLI can ask ``generate.paths`` for a replies path without importing
torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES: dict[str, str] = {
    "GenerationConfig": "sampling",
    "EosExemptRepetitionPenalty": "sampling",
    "RowSeededGumbel": "sampling",
    "stop_token_ids": "sampling",
    "compute_gates": "decode",
    "decode_complete": "decode",
    "generate_replies": "decode",
    "prompt_ids_with_spans": "decode",
    "REPLY_COLUMNS": "reply_file",
    "ReplyFile": "reply_file",
    "check_records": "reply_file",
    "reply_key": "reply_file",
    "reply_row": "reply_file",
    "generations_path": "paths",
    "replies_dir": "paths",
    "replies_path": "paths",
    "generate_replies_vllm": "vllm",
}

__all__ = list(_NAMES)


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_NAMES})
