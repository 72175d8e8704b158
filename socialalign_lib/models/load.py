"""Loading a base model: the embedded folder or any hub id / local path, optionally NF4 4-bit.

Why it exists: :func:`load_base_model` is the course's one loader, so switching from the embedded model to
``Qwen/Qwen2.5-7B-Instruct`` is a change of one parameter; :func:`resolve_device` is the one "auto" device rule
(including the per-rank GPU under ``torchrun``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


class ModelNotFoundError(FileNotFoundError):
    """``load_base_model`` could not find a local folder and could not (or may not) reach the hub."""


def resolve_device(device: str = "auto") -> str:
    """ "auto" → "cuda" when a GPU is visible, else "cpu"; anything else is returned unchanged.

    Under ``torchrun`` / ``accelerate launch`` (``LOCAL_RANK`` set) "auto" is this process's own GPU,
    ``"cuda:<LOCAL_RANK>"``: with a plain "cuda" every DDP rank would load its replica onto GPU 0."""
    if device == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        local_rank = os.environ.get("LOCAL_RANK")
        return f"cuda:{int(local_rank)}" if local_rank is not None else "cuda"
    return device


def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def load_base_model(
    name_or_path: str | os.PathLike,
    *,
    load_in_4bit: bool = False,
    device: str = "auto",
    dtype: torch.dtype | str | None = None,
    trust_remote_code: bool = False,
    padding_side: str | None = None,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for the embedded folder or any hub id / local path, in eval mode.

    The one loader of the course, so that switching from the embedded model to ``Qwen/Qwen2.5-7B-Instruct`` is a
    change of one parameter. ``device`` "auto" = CUDA when available, else CPU. ``dtype`` None = float32 on CPU
    (bf16 matmuls are several times slower there) and the checkpoint's own dtype on CUDA.

    ``load_in_4bit``: bitsandbytes NF4 with double quantisation (QLoRA's recipe); compute dtype bfloat16 on CUDA,
    float32 on CPU (bitsandbytes >= 0.50 runs NF4 on CPU), or ``dtype`` when given. The LM head and embeddings
    stay unquantised.

    The tokenizer always has a pad token (eos when the checkpoint defines none), and the model's
    ``generation_config.pad_token_id`` matches it. ``padding_side`` is passed to the tokenizer constructor.
    Raises :class:`ModelNotFoundError` when ``name_or_path`` is neither a local folder nor reachable.
    """
    from huggingface_hub.errors import HFValidationError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(device)
    local = Path(name_or_path).expanduser()
    source = str(local) if local.exists() else str(name_or_path)
    if local.exists() and not (local / "config.json").exists():
        raise ModelNotFoundError(f"{local} exists but holds no config.json: not a saved model folder")

    if dtype is None:
        dtype = torch.float32 if device == "cpu" else "auto"
    kwargs: dict[str, Any] = {
        "dtype": dtype,
        "device_map": {"": device},
        "trust_remote_code": trust_remote_code,
    }
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        compute = (
            dtype
            if isinstance(dtype, torch.dtype)
            else (torch.bfloat16 if device.startswith("cuda") else torch.float32)
        )
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=compute,
            bnb_4bit_use_double_quant=True,
        )
        if dtype == "auto":
            kwargs["dtype"] = compute
    tok_kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if padding_side is not None:
        tok_kwargs["padding_side"] = padding_side
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **tok_kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, HFValidationError) as err:
        if local.exists():
            raise
        from socialalign_lib.paths import EMBEDDED_MODEL

        hint = (
            "the hub is offline (HF_HUB_OFFLINE=1): unset it and check the network, or pre-download the model"
            if _hub_offline()
            else "check the name and the network"
        )
        raise ModelNotFoundError(
            f"cannot load model {str(name_or_path)!r}: it is not a local folder and {hint}. The embedded default is "
            f"{EMBEDDED_MODEL} (rebuild it with `make model`)."
        ) from err

    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer of {source} has neither a pad nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer
