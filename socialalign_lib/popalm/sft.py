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
from dataclasses import dataclass, field
from typing import Any

import torch

from ..popularity.smp_llm_train import LoraSettings, TrainResult, fresh_copy, train_and_merge

__all__ = ["SFTConfig", "train_sft"]


@dataclass
class SFTConfig:
    """Knobs of :func:`train_sft`; defaults suit the ~1M-parameter course model on CPU (high LoRA learning rate,
    fp32, no gradient checkpointing). ``lora=None``: full fine-tuning."""

    lora: LoraSettings | None = field(default_factory=LoraSettings)
    learning_rate: float = 3e-3
    max_steps: int = 150
    batch_size: int = 16
    warmup_ratio: float = 0.05
    max_length: int = 256
    seed: int = 0
    logging_steps: int = 10


def train_sft(model: Any, tokenizer: Any, records: Sequence[dict[str, str]], cfg: SFTConfig | None = None
              ) -> TrainResult:
    """LoRA SFT of a *copy* of ``model`` on prompt/completion ``records``; returns the merged model (eval mode),
    the loss history and the wall time. ``model`` itself is untouched (it stays the zero-shot baseline)."""
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    cfg = cfg or SFTConfig()
    if not records:
        raise ValueError("no SFT records")
    work = fresh_copy(model).train()
    with tempfile.TemporaryDirectory() as tmp:
        args = TRLSFTConfig(
            output_dir=tmp, learning_rate=cfg.learning_rate, max_steps=cfg.max_steps,
            per_device_train_batch_size=cfg.batch_size, warmup_steps=cfg.warmup_ratio, lr_scheduler_type="cosine",
            logging_steps=cfg.logging_steps, save_strategy="no", report_to="none", bf16=False, fp16=False,
            use_cpu=not torch.cuda.is_available(), activation_checkpointing=False, seed=cfg.seed, data_seed=cfg.seed,
            dataloader_num_workers=0, disable_tqdm=True, max_length=cfg.max_length, completion_only_loss=True,
            packing=False)
        trainer = SFTTrainer(model=work, args=args, train_dataset=Dataset.from_list(list(records)),
                             processing_class=tokenizer,
                             peft_config=None if cfg.lora is None else cfg.lora.peft_config())
        trainer.remove_callback(PrinterCallback)
        return train_and_merge(trainer)
