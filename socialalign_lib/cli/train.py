"""``socialalign train``: train a SocialLLM (PAC-LoRA / LoRA SFT) on one split of a ``build`` folder; runs
unchanged under ``torchrun`` / ``accelerate launch`` (the HF Trainer does the distribution)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import CommandError, _outputs_dir
from .inputs import _build_info, load_records


@dataclass
class TrainOptions:
    dataset: str  # `socialalign build` output folder, a saved DatasetDict, or a records .jsonl file
    split: str = "train"  # split to train on
    eval_split: str | None = None  # split the Trainer evaluates (set --eval-strategy steps); None: none
    output_dir: str | None = (
        None  # run folder (adapter/, socialllm.json); default: the notebooks' outputs/socialllm/...
    )
    limit: int | None = None  # train on the first N records only (smoke runs)


def cmd_train(c: dict[str, Any]) -> dict[str, Any]:
    """Train a SocialLLM (``socialllm.train_socialllm``) on one split; works under ``torchrun`` / ``accelerate``."""
    from socialalign_lib.train.run_folder import default_output_dir, run_name
    from socialalign_lib.train.socialllm import train_socialllm

    cfg, opt = c["model"], c["train"]
    train = load_records(opt.dataset, opt.split)
    if opt.limit is not None:
        train = train.select(range(min(opt.limit, len(train))))
    n_variant = (
        sum(v == cfg.variant for v in train["variant"]) if "variant" in train.column_names else len(train)
    )
    if cfg.method != "base" and not n_variant:
        raise CommandError(
            f"{opt.dataset}: no training records of variant {cfg.variant!r} in split {opt.split!r} "
            f"({len(train)} records in the split)"
        )
    evals = load_records(opt.dataset, opt.eval_split) if opt.eval_split else None
    if opt.output_dir:
        out = Path(opt.output_dir)
    else:
        info = _build_info(opt.dataset)
        out = (
            default_output_dir(cfg, info["size"], info["seed"])
            if info.get("source") == "world" and opt.limit is None
            else _outputs_dir() / "socialllm" / Path(opt.dataset).name / run_name(cfg)
        )
    run = train_socialllm(cfg, train, out, eval_dataset=evals, progress=c["run"].progress)
    losses = run.losses()
    return {
        "output_dir": str(run.output_dir),
        "method": cfg.method,
        "n_train": n_variant,
        "loaded": run.loaded,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[1] if losses else None,
        "train_seconds": round(run.train_seconds, 2),
    }


def _groups_train() -> dict[str, type]:
    from socialalign_lib.train.config import SocialLLMConfig

    return {"train": TrainOptions, "model": SocialLLMConfig}


def _training_arguments() -> list[type]:
    from transformers import TrainingArguments

    return [TrainingArguments]


MODEL_HELP = {
    "model.n_experts": "PAC-LoRA: analyzing experts (news-gated) and writing experts (user-gated) per layer",
    "model.r": "rank of each expert (PAC-LoRA) or of the LoRA update",
    "model.alpha": "scale numerator: the update is multiplied by alpha / r",
    "model.dropout": "dropout on the adapter input",
    "model.gate_hidden": "PAC-LoRA: hidden width of each gate MLP",
    "model.sft.gradient_checkpointing": "recompute activations during backward to save memory (7B runs: on)",
}
"""Field-by-field help where ``SocialLLMConfig`` documents knobs in bulk or ``TrainingArguments`` says too little."""
