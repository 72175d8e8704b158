"""The course's own base model: a byte-level BPE tokenizer and a tiny Qwen2 pre-trained on the world's text.

Why it exists: nothing can be downloaded from a model hub in the embedded setting, yet every later notebook needs a
real causal LM with a chat template, an offset-mapping tokenizer and the Qwen2 module names that PAC-LoRA targets.
So the course trains one in a minute or two on CPU:

1. :mod:`.tokenizer` - :func:`train_tokenizer`: byte-level BPE with Qwen2's pre-tokenizer regex (CJK runs stay
   together, so common characters and words become single tokens), ChatML special tokens and chat template.
2. :mod:`.tiny` - :func:`build_tiny_model`: a randomly initialised ``Qwen2ForCausalLM`` (or ``LlamaForCausalLM``)
   sized by :class:`TinyModelConfig`.
3. :mod:`.pretrain` - :func:`world_corpus` and :func:`background_corpus` (what the model reads) and
   :func:`pretrain`, a plain-torch causal-LM loop on packed text, so the "zero-shot base model" baseline is a
   language model of Weibo text rather than noise.
4. :mod:`.build` - :func:`build_base_model`: all three, saved atomically with ``save_pretrained`` plus a model card.
5. :mod:`.load` - :func:`load_base_model`, the one loader notebooks use, for the embedded folder and for any hub id
   alike (optionally NF4 4-bit through bitsandbytes, also on CPU).

Rebuild the embedded model with ``make model`` (``python -m socialalign_lib.models --rebuild``).
Every name is re-exported here, so ``socialalign_lib.models.X`` works whatever submodule defines ``X``.
"""

from __future__ import annotations

from .build import build_base_model, main
from .load import ModelNotFoundError, load_base_model, resolve_device
from .pretrain import (
    BACKGROUND_SEED,
    PretrainConfig,
    background_corpus,
    cosine_lr,
    pack_texts,
    pretrain,
    world_corpus,
)
from .tiny import TinyModelConfig, build_tiny_model
from .tokenizer import (
    CHATML_TEMPLATE,
    EOS_TOKEN,
    IM_END,
    IM_START,
    QWEN2_SPLIT_PATTERN,
    SPECIAL_TOKENS,
    bytes_to_unicode,
    train_tokenizer,
)

__all__ = [
    "BACKGROUND_SEED",
    "CHATML_TEMPLATE",
    "EOS_TOKEN",
    "IM_END",
    "IM_START",
    "QWEN2_SPLIT_PATTERN",
    "SPECIAL_TOKENS",
    "ModelNotFoundError",
    "PretrainConfig",
    "TinyModelConfig",
    "background_corpus",
    "build_base_model",
    "build_tiny_model",
    "bytes_to_unicode",
    "cosine_lr",
    "load_base_model",
    "main",
    "pack_texts",
    "pretrain",
    "resolve_device",
    "train_tokenizer",
    "world_corpus",
]
