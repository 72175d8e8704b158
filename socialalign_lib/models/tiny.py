"""The course model's architecture: a randomly initialised tiny Qwen2 (or Llama) sized by :class:`TinyModelConfig`.

Why it exists: PAC-LoRA targets Qwen2's module names and the course exercises the real family's code paths
(grouped-query attention, tied embeddings), so the embedded model is a genuine ``Qwen2ForCausalLM``, only small.
Pre-training is in :mod:`.pretrain`, the saved folder in :mod:`.build`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .tokenizer import IM_END


@dataclass
class TinyModelConfig:
    """Shape of the course model (~0.9 M parameters at vocab 4000). ``vocab_size`` comes from the tokenizer.

    Grouped-query attention (4 query heads, 2 key/value heads, head dim 32) and tied embeddings as in Qwen2.5-0.5B,
    so the code paths the course exercises are those of the real family. ``arch`` "qwen2" (q/k/v biases) or
    "llama" (none) - the latter exists to check that nothing in the library is Qwen2-specific.
    """

    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 352
    max_position_embeddings: int = 1024
    tie_word_embeddings: bool = True
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    initializer_range: float = 0.02
    arch: str = "qwen2"


def _special_ids(tokenizer: Any) -> tuple[int, int, list[int]]:
    """(pad id, bos id, generation eos ids): chat answers end with ``<|im_end|>``, plain text with the eos."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos token")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    stops = [eos]
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id and im_end not in stops:
        stops.insert(0, im_end)
    return pad, eos, stops


def build_tiny_model(
    tokenizer: Any, cfg: TinyModelConfig | None = None, *, arch: str | None = None, seed: int = 0
) -> Any:
    """A randomly initialised ``Qwen2ForCausalLM`` (``arch="llama"``: ``LlamaForCausalLM``) for ``tokenizer``.

    ``vocab_size = len(tokenizer)`` (added tokens included). Initialisation is seeded inside ``fork_rng``, so it is
    reproducible and leaves the caller's global RNG untouched. ``generation_config``: pad = ``<|endoftext|>``,
    eos = [``<|im_end|>``, ``<|endoftext|>``] so generation stops at the end of a chat turn or of a text.
    Returns the model in eval mode, fp32, on CPU.
    """
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    cfg = cfg or TinyModelConfig()
    arch = (arch or cfg.arch).lower()
    classes = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}
    if arch not in classes:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(classes)}")
    pad, eos, stops = _special_ids(tokenizer)
    config_cls, model_cls = classes[arch]
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=cfg.tie_word_embeddings,
        rms_norm_eps=cfg.rms_norm_eps,
        initializer_range=cfg.initializer_range,
        rope_parameters={"rope_type": "default", "rope_theta": float(cfg.rope_theta)},
        pad_token_id=pad,
        bos_token_id=eos,
        eos_token_id=eos,
        dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model.generation_config.pad_token_id = pad
    model.generation_config.bos_token_id = eos
    model.generation_config.eos_token_id = stops
    return model.eval()
