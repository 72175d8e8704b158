"""Training stage: fine-tune a base model on SocialAlign records (PAC-LoRA or plain LoRA) and keep the run.

    sft.py         SFTConfig and the span-aware HF Trainer path (SpanCollator, SpanTrainer, train_sft)
    config.py      SocialLLMConfig (what to train), course_sft_config, socialllm_config, model_chat_config
    data.py        records as a list of dicts, variant selection, batching
    run_folder.py  a run folder's name, hash, state file and adapter files; SocialLLMError
    socialllm.py   train_socialllm / load_socialllm / untrained_socialllm, reply_loss

This package's names load on first use (PEP 562), so importing a light module such as ``run_folder`` (the CLI
does, for the replies layout) does not import transformers. ``from socialalign_lib.train import SFTConfig`` and
the other names of the former ``train.py`` module keep working.
"""

from __future__ import annotations

from socialalign_lib.exports import lazy_names

_NAMES: dict[str, str] = {
    # the former socialalign_lib/train.py
    "EXTRA_TRAINING_ARGUMENTS": "sft",
    "SPAN_KEY": "sft",
    "SFTConfig": "sft",
    "SpanCollator": "sft",
    "SpanTrainer": "sft",
    "plot_loss": "sft",
    "tokenize_dataset": "sft",
    "train_sft": "sft",
    "_LossLog": "sft",
    "_QuietProgress": "sft",
    # SocialLLM training
    "METHODS": "config",
    "SocialLLMConfig": "config",
    "course_sft_config": "config",
    "model_chat_config": "config",
    "socialllm_config": "config",
    "SocialLLMError": "run_folder",
    "default_output_dir": "run_folder",
    "run_name": "run_folder",
    "TrainedSocialLLM": "socialllm",
    "load_socialllm": "socialllm",
    "reply_loss": "socialllm",
    "run_hash": "socialllm",
    "train_socialllm": "socialllm",
    "untrained_socialllm": "socialllm",
}

__all__ = [name for name in _NAMES if not name.startswith("_")]


__getattr__, __dir__ = lazy_names(__name__, _NAMES, globals())
