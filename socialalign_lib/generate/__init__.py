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

from socialalign_lib.exports import lazy_names

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


__getattr__, __dir__ = lazy_names(__name__, _NAMES, globals())
