"""PopALM step 1: supervised fine-tuning on the trendy (top-liked) replies.

TRL's ``SFTTrainer`` on standard prompt/completion records (:func:`~socialalign_lib.popalm.data.sft_records`):
the loss is on the reply tokens only and TRL appends the eos the base model already ends every text with. LoRA
(peft) on every projection, merged afterwards, so the SFT model is a plain model: the starting point of PPO and,
with PPO's fresh adapters disabled, its frozen reference. PopALM: ChatGLM-6B, P-tuning v2, lr 2e-2, 3000 steps,
batch 4, replies cut at 32 tokens.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..popularity.smp_llm_train import SFTRunConfig, TrainResult, fresh_copy, train_and_merge, trl_arguments

__all__ = ["PopalmSFTConfig", "SFTConfig", "train_sft"]


@dataclass
class PopalmSFTConfig(SFTRunConfig):
    """Knobs of :func:`train_sft`: the popularity methods' one TRL SFT config (``SFTRunConfig``: LoRA settings,
    learning rate, steps, batch, warm-up share, ``max_length`` …) with PopALM's defaults — 150 steps, replies cut
    at 256 tokens. ``answer_end`` does not apply (PopALM's records are plain prompt/completion text). ``lora=None``:
    full fine-tuning."""

    max_steps: int = 150
    max_length: int = 256


SFTConfig = PopalmSFTConfig
"""PopALM's name for its SFT config (``popalm.sft.SFTConfig``), kept; the span-aware SocialLLM trainer's config
is ``socialalign_lib.train.SFTConfig``."""


def train_sft(
    model: Any, tokenizer: Any, records: Sequence[dict[str, str]], cfg: SFTRunConfig | None = None
) -> TrainResult:
    """LoRA SFT of a *copy* of ``model`` on prompt/completion ``records``; returns the merged model (eval mode),
    the loss history and the wall time. ``model`` itself is untouched (it stays the zero-shot baseline)."""
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    cfg = cfg or PopalmSFTConfig()
    if not records:
        raise ValueError("no SFT records")
    work = fresh_copy(model).train()
    with tempfile.TemporaryDirectory() as tmp:
        # the shared arguments, with PopALM's warm-up (a share of the steps, rounded up by transformers) and no bars
        common = {
            **trl_arguments(cfg, cfg.output_dir or tmp),
            "warmup_steps": cfg.warmup_ratio,
            "disable_tqdm": True,
        }
        args = TRLSFTConfig(**common, completion_only_loss=True, packing=False)
        trainer = SFTTrainer(
            model=work,
            args=args,
            train_dataset=Dataset.from_list(list(records)),
            processing_class=tokenizer,
            peft_config=None if cfg.lora is None else cfg.lora.peft_config(),
        )
        trainer.remove_callback(PrinterCallback)
        return train_and_merge(trainer)
