"""Deprecated import path: use socialalign_lib.train (config, run_folder, socialllm, sft) and
socialalign_lib.generate (sampling, decode, reply_file, paths).

This module was split by pipeline stage: what to train and how (``train.config``, ``train.socialllm``), a run
folder's identity and files (``train.run_folder``), and generation (``generate.sampling``, ``generate.decode``,
``generate.reply_file``, ``generate.paths``). Every name it held is re-exported here (the former private aliases
too), so notebooks and code that import ``socialalign_lib.socialllm`` keep working. Patch the new modules, not this
one: a value set here is not seen by the code that moved.
"""

from __future__ import annotations

from socialalign_lib import paths  # noqa: F401 - was importable from here
from socialalign_lib.records import VARIANTS, ChatConfig, build_chat_example, resolve_spans

from .generate.decode import (
    _MAX_CUT_TOKENS,
    REPLACEMENT_CHAR,
    _checked_non_pac_mode,
    compute_gates,
    decode_complete,
    generate_replies,
    prompt_ids_with_spans,
)
from .generate.decode import layer_mean_gates as _layer_mean_gates
from .generate.decode import left_pad as _left_pad
from .generate.paths import generations_path, replies_dir
from .generate.reply_file import _RECORD_FIELDS, REPLY_COLUMNS, check_records, reply_key, reply_row
from .generate.sampling import EosExemptRepetitionPenalty, GenerationConfig, RowSeededGumbel, stop_token_ids
from .pac_lora import is_pac_model
from .pac_lora import use_gate_mode as gate_mode
from .train.config import (
    _SFT_BOOKKEEPING,
    METHODS,
    OFFICIAL_LORA_LR,
    SIZE_STEPS,
    SocialLLMConfig,
    course_sft_config,
    model_chat_config,
    socialllm_config,
)
from .train.data import as_records, batched
from .train.data import select_variant as _select_variant
from .train.run_folder import (
    ADAPTER_CONFIG,
    ADAPTER_DIR,
    ADAPTER_WEIGHTS,
    CHECKPOINT_DIR,
    FORMAT,
    STATE_FILE,
    SocialLLMError,
    _slug,
    adapter_checksums,
    dataset_fingerprint,
    default_output_dir,
    portable_adapter,
    read_finished_state,
    read_run_state,
    run_name,
    verify_adapter,
)
from .train.run_folder import base_fingerprint as _base_fingerprint
from .train.run_folder import check_loaded_adapter as _check_loaded_adapter
from .train.run_folder import is_committed as _is_committed
from .train.run_folder import run_hash_of_records as _run_hash
from .train.run_folder import sha256_json as _sha256
from .train.run_folder import write_run_state as _write_state
from .train.sft import SFTConfig, tokenize_dataset, train_sft
from .train.socialllm import (
    TrainedSocialLLM,
    _barrier,
    _is_main_process,
    _load_base,
    _train_adapter,
    _versions,
    load_socialllm,
    reply_loss,
    run_hash,
    train_socialllm,
    untrained_socialllm,
)
from .train.socialllm import model_device as _model_device

# the earlier private names
_records = as_records
_read_state = read_run_state
_prompt = prompt_ids_with_spans
_eos_ids = stop_token_ids
_row_key = reply_key
_check_records = check_records
_output_row = reply_row
_batches = batched
_gate_mode_ctx = gate_mode

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_DIR",
    "ADAPTER_WEIGHTS",
    "CHECKPOINT_DIR",
    "FORMAT",
    "METHODS",
    "OFFICIAL_LORA_LR",
    "REPLACEMENT_CHAR",
    "REPLY_COLUMNS",
    "SIZE_STEPS",
    "STATE_FILE",
    "VARIANTS",
    "ChatConfig",
    "EosExemptRepetitionPenalty",
    "GenerationConfig",
    "RowSeededGumbel",
    "SFTConfig",
    "SocialLLMConfig",
    "SocialLLMError",
    "TrainedSocialLLM",
    "adapter_checksums",
    "as_records",
    "batched",
    "build_chat_example",
    "check_records",
    "compute_gates",
    "course_sft_config",
    "dataset_fingerprint",
    "decode_complete",
    "default_output_dir",
    "gate_mode",
    "generate_replies",
    "generations_path",
    "is_pac_model",
    "load_socialllm",
    "model_chat_config",
    "portable_adapter",
    "prompt_ids_with_spans",
    "read_finished_state",
    "read_run_state",
    "replies_dir",
    "reply_key",
    "reply_loss",
    "reply_row",
    "resolve_spans",
    "run_hash",
    "run_name",
    "socialllm_config",
    "stop_token_ids",
    "tokenize_dataset",
    "train_sft",
    "train_socialllm",
    "untrained_socialllm",
    "verify_adapter",
    # private names kept for old callers
    "_MAX_CUT_TOKENS",
    "_RECORD_FIELDS",
    "_SFT_BOOKKEEPING",
    "_barrier",
    "_base_fingerprint",
    "_check_loaded_adapter",
    "_checked_non_pac_mode",
    "_is_committed",
    "_is_main_process",
    "_layer_mean_gates",
    "_left_pad",
    "_load_base",
    "_model_device",
    "_run_hash",
    "_select_variant",
    "_sha256",
    "_slug",
    "_train_adapter",
    "_versions",
    "_write_state",
]
