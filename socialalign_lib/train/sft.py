"""Supervised fine-tuning of SocialLLMs (PAC-LoRA, plain LoRA) with the stock HF ``Trainer``.

Why not TRL's ``SFTTrainer``: it patches a fused LM head and calls the backbone directly, so the PAC-LoRA spans
would be silently ignored (docs/engineering.md#fused-lm-head). The HF ``Trainer`` with our collator is enough:
the collator pads and
carries the spans, ``remove_unused_columns=False`` keeps them, and the loss is on the response tokens only (the
records' labels are -100 on the prompt). Gradient checkpointing, DDP (``torchrun`` / ``accelerate launch``),
checkpoint resume and 4-bit (QLoRA) come from the Trainer unchanged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import get_last_checkpoint

from socialalign_lib.build.records.chat import build_chat_example

SPAN_KEY = "pac_spans"

EXTRA_TRAINING_ARGUMENTS: frozenset[str] = frozenset(
    {
        "optim",
        "optim_args",
        "adam_beta1",
        "adam_beta2",
        "adam_epsilon",
        "lr_scheduler_kwargs",
        "warmup_steps",
        "fp16",
        "tf32",
        "torch_compile",
        "gradient_checkpointing_kwargs",
        "activation_checkpointing_kwargs",
        "label_smoothing_factor",
        "group_by_length",
        "length_column_name",
        "eval_accumulation_steps",
        "eval_delay",
        "logging_first_step",
        "logging_strategy",
        "save_strategy",
        "save_only_model",
        "save_safetensors",
        "load_best_model_at_end",
        "metric_for_best_model",
        "greater_is_better",
        "data_seed",
        "full_determinism",
        "dataloader_pin_memory",
        "dataloader_persistent_workers",
        "dataloader_prefetch_factor",
        "dataloader_drop_last",
        "ddp_backend",
        "ddp_timeout",
        "ddp_bucket_cap_mb",
        "ddp_broadcast_buffers",
        "deepspeed",
        "fsdp",
        "fsdp_config",
        "disable_tqdm",
        "neftune_noise_alpha",
        "average_tokens_across_devices",
        "skip_memory_metrics",
        "include_num_input_tokens_seen",
    }
)
"""``TrainingArguments`` that ``SFTConfig.extra`` may set. An allow-list, not a deny-list: some arguments send the
run off this machine (``push_to_hub``, ``hub_*``, ``report_to`` → W&B/MLflow uploads) or move its files
(``output_dir``, ``logging_dir``), and a new transformers release may add more of those."""


@dataclass
class SFTConfig:
    """Training knobs. Defaults suit the course model on CPU; the paper's official values are in ``official()``."""

    output_dir: str = "outputs/sft"
    num_train_epochs: float = 2.0
    max_steps: int = -1
    learning_rate: float = 1e-3
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 16
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.1  # share of the optimizer steps with a linear learning-rate warm-up
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    lr_scheduler_type: str = "cosine"
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int = 2
    eval_strategy: str = "no"
    eval_steps: int | None = None
    seed: int = 0
    bf16: bool = False
    gradient_checkpointing: bool = False
    dataloader_num_workers: int = 0
    resume: bool = True  # continue from the last checkpoint in output_dir when there is one
    extra: dict[str, Any] = field(
        default_factory=dict
    )  # other TrainingArguments from EXTRA_TRAINING_ARGUMENTS, e.g. {"optim": "paged_adamw_8bit"}

    def __post_init__(self) -> None:
        refused = sorted(set(self.extra) - EXTRA_TRAINING_ARGUMENTS)
        if refused:
            raise ValueError(
                f"SFTConfig.extra: {refused} not allowed (push_to_hub, report_to, hub_* or output paths "
                "would send or move the run; options with their own field are set there); allowed: "
                f"{sorted(EXTRA_TRAINING_ARGUMENTS)}"
            )

    @classmethod
    def official(cls, **overrides: Any) -> SFTConfig:
        """The official SocialAlign run: 2 epochs, batch 1 × grad-accum 16, lr 2e-5, cosine, warmup 0.1, bf16."""
        base = dict(
            num_train_epochs=2,
            learning_rate=2e-5,
            per_device_train_batch_size=1,
            gradient_accumulation_steps=16,
            warmup_ratio=0.1,
            weight_decay=0.01,
            max_grad_norm=1.0,
            bf16=True,
            gradient_checkpointing=True,
        )
        return cls(**{**base, **overrides})

    def training_arguments(self) -> TrainingArguments:
        kw = {
            k: v
            for k, v in asdict(self).items()
            if k not in ("resume", "extra", "warmup_ratio", "gradient_checkpointing")
        }
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"SFTConfig.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        # transformers 5 dropped ``warmup_ratio``: a float ``warmup_steps`` < 1 is read as that fraction of the steps,
        # and renamed ``gradient_checkpointing`` (a deprecated alias until v6) to ``activation_checkpointing``
        kw["warmup_steps"] = self.warmup_ratio
        kw["activation_checkpointing"] = self.gradient_checkpointing
        fixed = dict(
            remove_unused_columns=False,
            report_to=[],
            use_cpu=not torch.cuda.is_available(),
            disable_tqdm=False,
            ddp_find_unused_parameters=False,
        )
        return TrainingArguments(
            **{**kw, **fixed, **self.extra}
        )  # ``extra`` wins, e.g. {"disable_tqdm": True}


class SpanCollator:
    """Right-pads a batch of tokenised records and stacks their spans into ``pac_spans [batch, 2, 2]``
    = ((user_start, user_end), (news_start, news_end)), end exclusive. Right padding keeps span indices valid."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = 8):
        self.pad_token_id = pad_token_id
        self.multiple = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        n = max(len(f["input_ids"]) for f in features)
        if self.multiple:
            n = int(math.ceil(n / self.multiple) * self.multiple)
        ids = torch.full((len(features), n), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(features), n), dtype=torch.long)
        labels = torch.full((len(features), n), -100, dtype=torch.long)
        for i, f in enumerate(features):
            k = len(f["input_ids"])
            ids[i, :k] = torch.as_tensor(f["input_ids"])
            mask[i, :k] = 1
            labels[i, :k] = torch.as_tensor(f["labels"])
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        if "user_span" in features[0]:
            batch[SPAN_KEY] = torch.tensor(
                [[f["user_span"], f["news_span"]] for f in features], dtype=torch.long
            )
        return batch


class SpanTrainer(Trainer):
    """``Trainer`` that hands the spans to the model (PAC-LoRA) or drops them (plain LoRA / base model)."""

    def __init__(self, *args: Any, use_spans: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.use_spans = use_spans

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        spans = inputs.pop(SPAN_KEY, None)
        if self.use_spans:
            if spans is None:
                raise ValueError("PAC-LoRA training needs spans: the dataset must carry user_span/news_span")
            inputs[SPAN_KEY] = spans
        return super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        spans = inputs.pop(SPAN_KEY, None)
        if self.use_spans and spans is not None:
            inputs[SPAN_KEY] = spans
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)


class _QuietProgress(ProgressCallback):
    """The Trainer's progress bar without a printed line per logging step (the rows are kept by ``_LossLog``)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


class _LossLog(TrainerCallback):
    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            self.rows.append(
                {
                    "step": state.global_step,
                    **{k: float(v) for k, v in logs.items() if isinstance(v, (int, float))},
                }
            )


def tokenize_dataset(dataset, tokenizer, chat_config=None, desc: str = "tokenise"):
    """Map records to ``input_ids / attention_mask / labels / user_span / news_span`` (see ``records``)."""
    keep = ["input_ids", "attention_mask", "labels", "user_span", "news_span"]
    return dataset.map(
        lambda r: {k: v for k, v in build_chat_example(tokenizer, r, chat_config).items() if k in keep},
        remove_columns=dataset.column_names,
        desc=desc,
    )


def train_sft(
    model,
    tokenizer,
    train_dataset,
    config: SFTConfig,
    eval_dataset=None,
    use_spans: bool = True,
    callbacks: list | None = None,
) -> tuple[SpanTrainer, list[dict[str, float]]]:
    """Train (resuming from the last checkpoint in ``output_dir`` when ``config.resume``); return the trainer
    and the logged history (loss, learning rate, grad norm per logging step)."""
    log = _LossLog()
    trainer = SpanTrainer(
        model=model,
        args=config.training_arguments(),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=SpanCollator(tokenizer.pad_token_id),
        callbacks=[log, *(callbacks or [])],
        use_spans=use_spans,
    )
    trainer.remove_callback(PrinterCallback)  # disable_tqdm=True: no log lines either
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(_QuietProgress)
    last = (
        get_last_checkpoint(config.output_dir) if config.resume and Path(config.output_dir).is_dir() else None
    )
    trainer.train(resume_from_checkpoint=last)
    return trainer, log.rows


def plot_loss(histories: dict[str, list[dict[str, float]]], title: str = "Training loss"):
    """One line per run (e.g. LoRA vs PAC-LoRA): training loss against optimizer step."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, rows in histories.items():
        pts = [(r["step"], r["loss"]) for r in rows if "loss" in r]
        if pts:
            ax.plot(*zip(*pts), label=name)
    ax.set(xlabel="optimizer step", ylabel="cross-entropy (response tokens)", title=title)
    ax.legend()
    return fig
