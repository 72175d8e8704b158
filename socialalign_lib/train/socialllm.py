"""Train a SocialLLM (PAC-LoRA or plain LoRA on a base causal LM), load a finished run, measure its reply loss.

    cfg = SocialLLMConfig(method="pac_lora")
    run = train_socialllm(cfg, data.split("train"), default_output_dir(cfg, "course", 0))

``train_socialllm`` writes ``socialllm.json`` (config, run hash, loss history) next to the peft adapter in
``output_dir`` (:mod:`.run_folder`); called again with the same config and training data it loads that run
instead of training, so notebooks 04–06 reuse what notebook 03 trained. An interrupted run resumes from its last
Trainer checkpoint. The training itself is the span-aware HF ``Trainer`` of :mod:`.sft`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training
from torch import nn

from socialalign_lib.build.records.chat import ChatConfig, build_chat_example
from socialalign_lib.models import load_base_model
from socialalign_lib.pac_lora import get_pac_model, is_pac_model, load_pac_model

from .config import SocialLLMConfig, model_chat_config
from .data import as_records, batched, select_variant
from .run_folder import (
    ADAPTER_DIR,
    CHECKPOINT_DIR,
    FORMAT,
    SocialLLMError,
    adapter_checksums,
    check_loaded_adapter,
    is_committed,
    portable_adapter,
    read_finished_state,
    read_run_state,
    replies_dir,
    run_hash_of_records,
    verify_adapter,
    write_run_state,
)
from .sft import SpanCollator, tokenize_dataset, train_sft

__all__ = [
    "TrainedSocialLLM",
    "load_socialllm",
    "model_device",
    "reply_loss",
    "run_hash",
    "train_socialllm",
    "untrained_socialllm",
]


@dataclass
class TrainedSocialLLM:
    """A trained (or zero-shot) SocialLLM, ready to generate.

    Attributes:
        model: the transformers model (``"base"``) or the ``PeftModel`` with the adapter, in eval mode.
        tokenizer: its tokenizer.
        history: the Trainer's logged rows (``step``, ``loss``, ``learning_rate``, ``grad_norm``, …); ``[]`` for base.
        output_dir: the run folder (None when trained without one).
        config: the :class:`SocialLLMConfig`.
        train_seconds: wall time of training (0 for base; the original time when loaded).
        loaded: True when an earlier finished run was loaded instead of trained.
    """

    model: Any
    tokenizer: Any
    history: list[dict[str, float]]
    output_dir: Path | None
    config: SocialLLMConfig
    train_seconds: float = 0.0
    loaded: bool = False

    @property
    def method(self) -> str:
        return self.config.method

    def losses(self) -> tuple[float, float] | None:
        """(first, last) logged training loss, or None when nothing was trained."""
        values = [row["loss"] for row in self.history if "loss" in row]
        return (values[0], values[-1]) if values else None

    def adapter_parameters(self) -> int:
        """Number of adapter parameters (PAC-LoRA experts + gates, or LoRA A/B); 0 for the base model."""
        return sum(
            p.numel() for name, p in self.model.named_parameters() if ".pac_" in name or ".lora_" in name
        )


def run_hash(cfg: SocialLLMConfig, train_dataset: Any) -> str:
    """What identifies a finished run: the config hash, the base model's fingerprint and the training records'
    (``cfg.variant`` only). A committed checkpoint is current when its ``socialllm.json`` holds this value."""
    records = as_records(select_variant(train_dataset, cfg.variant)) if cfg.method != "base" else []
    return run_hash_of_records(cfg, records)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (where its inputs go)."""
    return next(p for p in model.parameters()).device


def _load_base(cfg: SocialLLMConfig) -> tuple[Any, Any]:
    dtype = getattr(torch, cfg.dtype) if cfg.dtype is not None else None
    return load_base_model(cfg.base_model, load_in_4bit=cfg.load_in_4bit, device=cfg.device, dtype=dtype)


def _versions() -> dict[str, str]:
    import peft
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def train_socialllm(
    cfg: SocialLLMConfig,
    train_dataset: Any,
    output_dir: str | Path | None = None,
    eval_dataset: Any | None = None,
    progress: bool = True,
    callbacks: list | None = None,
    write_committed: bool = False,
) -> TrainedSocialLLM:
    """Train a SocialLLM on SocialAlign records, or load the finished run with the same hash from ``output_dir``.

    The run hash covers the config (:meth:`SocialLLMConfig.config_hash`), the base model and the training records
    (``run_folder.dataset_fingerprint``), so a different world or split is never mistaken for a finished run.
    Checkpoints go to ``output_dir/checkpoints`` while training (``cfg.sft.save_steps``) and are resumed from when
    a run with the same hash was interrupted; they are deleted once the adapter is saved. Method ``"base"`` trains
    nothing.

    Args:
        train_dataset: records (``datasets.Dataset`` or dicts) with ``instruction``, ``output``, ``user_span``,
            ``news_span``; rows of other variants than ``cfg.variant`` are dropped.
        output_dir: the run folder; None trains in a temporary folder and saves nothing.
        eval_dataset: optional records evaluated by the Trainer (set ``cfg.sft.eval_strategy``).
        progress: show the Trainer's progress bar.
        callbacks: extra ``TrainerCallback``s (e.g. ``checkpoints.LearningCurve``).
        write_committed: allow (re)training into a committed folder under ``data/checkpoints`` (``make
            checkpoints`` only); otherwise a stale committed run raises instead of being overwritten.
    """
    from transformers.utils import logging as hf_logging

    train_dataset = select_variant(train_dataset, cfg.variant)
    records = as_records(train_dataset)
    if cfg.method != "base" and not records:
        raise ValueError(f"train_socialllm: no training records of variant {cfg.variant!r}")
    expected = run_hash_of_records(cfg, records)
    out = Path(output_dir) if output_dir is not None else None
    if out is not None:
        state = read_run_state(out)
        if state and state.get("finished") and state.get("run_hash") == expected:
            return load_socialllm(out)
        if state and is_committed(out) and not write_committed:
            raise SocialLLMError(
                f"{out}: this committed checkpoint was trained on other data or another base model than this run's "
                "(its socialllm.json run_hash differs). Rebuild the committed checkpoints with `make checkpoints`, "
                "or train a fresh copy (the notebooks' retrain=True; default_output_dir(..., committed=False))."
            )
        if state and state.get("run_hash") != expected:
            # checkpoints and replies of another config, base model or dataset: never resume from or reuse them
            shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
            shutil.rmtree(replies_dir(out), ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        write_run_state(
            out, {"format": FORMAT, "run_hash": expected, "finished": False, "config": cfg.to_dict()}
        )

    model, tokenizer = _load_base(cfg)
    history: list[dict[str, float]] = []
    seconds = 0.0
    if cfg.method != "base":
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        with warnings.catch_warnings():
            # transformers 5.24 deprecates the name ``gradient_checkpointing`` that Trainer/peft still use inside
            warnings.filterwarnings(
                "ignore", message=r".*gradient_checkpointing.*deprecated", category=FutureWarning
            )
            try:
                model, history, seconds = _train_adapter(
                    cfg, model, tokenizer, train_dataset, eval_dataset, out, progress, callbacks
                )
            finally:
                hf_logging.set_verbosity(verbosity)
    model.eval()
    if out is not None and _is_main_process():  # under torchrun every rank holds the same adapter: one writer
        adapter_sha256 = None
        if cfg.method != "base":
            model.save_pretrained(out / ADAPTER_DIR)
            portable_adapter(out / ADAPTER_DIR)
            shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
            adapter_sha256 = adapter_checksums(out / ADAPTER_DIR)
        state = {
            "format": FORMAT,
            "run_hash": expected,
            "finished": True,
            "config": cfg.to_dict(),
            "config_hash": cfg.config_hash(),
            "n_train": len(records),
            "train_seconds": seconds,
            "history": history,
            "versions": _versions(),
            "adapter_sha256": adapter_sha256,
        }
        write_run_state(out, state)
    _barrier()  # the other ranks return only once the adapter is on disk
    return TrainedSocialLLM(model, tokenizer, history, out, cfg, seconds)


def _is_main_process() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _train_adapter(
    cfg: SocialLLMConfig,
    model: Any,
    tokenizer: Any,
    train_dataset: Any,
    eval_dataset: Any,
    out: Path | None,
    progress: bool,
    callbacks: list | None = None,
) -> tuple[Any, list[dict[str, float]], float]:
    """Wrap ``model`` in the adapter (seeded), tokenise, train with ``sft.train_sft``; (model, history, seconds)."""
    if cfg.load_in_4bit:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.sft.gradient_checkpointing
        )
    torch.manual_seed(cfg.sft.seed)  # the adapter's initial weights
    if cfg.method == "pac_lora":
        model = get_pac_model(model, cfg.peft_config())
    else:
        model = get_peft_model(model, cfg.peft_config())
    chat = cfg.chat_config()
    train_tok = tokenize_dataset(train_dataset, tokenizer, chat, desc="tokenise train")
    eval_tok = None
    if eval_dataset is not None:
        eval_tok = tokenize_dataset(
            select_variant(eval_dataset, cfg.variant), tokenizer, chat, desc="tokenise eval"
        )
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = (out / CHECKPOINT_DIR) if out is not None else Path(tmp)
        sft = replace(cfg.sft, output_dir=str(ckpt), extra={**cfg.sft.extra, "disable_tqdm": not progress})
        start = time.perf_counter()
        trainer, _ = train_sft(
            model,
            tokenizer,
            train_tok,
            sft,
            eval_dataset=eval_tok,
            use_spans=cfg.method == "pac_lora",
            callbacks=callbacks,
        )
        seconds = time.perf_counter() - start
    # The Trainer's log history, not only this call's rows: a resumed run restores the earlier rows from its
    # checkpoint, so the saved loss curve covers the whole run.
    history = [
        {
            "step": int(row["step"]),
            **{k: float(v) for k, v in row.items() if k != "step" and isinstance(v, (int, float))},
        }
        for row in trainer.state.log_history
    ]
    return trainer.model, history, seconds


def load_socialllm(output_dir: str | Path) -> TrainedSocialLLM:
    """Load a finished run written by :func:`train_socialllm` (base model + adapter, eval mode).

    The adapter is verified first (``run_folder.verify_adapter``: files, checksum, header) and after loading
    (tensor names and shapes against the config).

    Raises:
        SocialLLMError: no ``socialllm.json``, an unfinished run, or a missing, corrupted or mismatched adapter.
    """
    out = Path(output_dir)
    state = read_finished_state(out)
    cfg = SocialLLMConfig.from_dict(state["config"])
    shapes = verify_adapter(out, state) if cfg.method != "base" else {}
    model, tokenizer = _load_base(cfg)
    if cfg.method != "base":
        adapter = (out / ADAPTER_DIR).resolve()  # absolute: peft must never read it as a Hub repo id
        try:
            if cfg.method == "pac_lora":
                model = load_pac_model(model, str(adapter))
            else:
                model = PeftModel.from_pretrained(model, str(adapter))
        except (RuntimeError, ValueError, KeyError) as err:  # e.g. "size mismatch for ..."
            raise SocialLLMError(
                f"{adapter}: cannot be loaded onto {cfg.base_model} ({str(err)[:300]})"
            ) from None
        check_loaded_adapter(model, shapes, adapter)
    return TrainedSocialLLM(
        model.eval(),
        tokenizer,
        list(state.get("history", [])),
        out,
        cfg,
        float(state.get("train_seconds", 0.0)),
        loaded=True,
    )


def untrained_socialllm(cfg: SocialLLMConfig) -> TrainedSocialLLM:
    """The adapter exactly as :func:`train_socialllm` initialises it (same seed), without training: the reference
    for "what did training change?". With B = 0 at init its replies are the base model's; its gates are the
    random initial gate MLPs applied to the spans."""
    model, tokenizer = _load_base(cfg)
    if cfg.method != "base":
        torch.manual_seed(cfg.sft.seed)
        model = (get_pac_model if cfg.method == "pac_lora" else get_peft_model)(model, cfg.peft_config())
    return TrainedSocialLLM(model.eval(), tokenizer, [], None, cfg)


@torch.no_grad()
def reply_loss(
    model: Any, tokenizer: Any, records: Any, batch_size: int = 16, chat_config: ChatConfig | None = None
) -> float:
    """Mean cross-entropy (nats per token) of the real replies given their prompts: the training loss measured on
    other records (e.g. the validation split), comparable across base, LoRA and PAC-LoRA."""
    rows = as_records(records)
    if not rows:
        raise ValueError("reply_loss: no records")
    chat = chat_config or model_chat_config(model)
    collate = SpanCollator(
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    device, pac = model_device(model), is_pac_model(model)
    total, tokens = 0.0, 0
    for batch in batched(rows, batch_size):
        inputs = collate([build_chat_example(tokenizer, r, chat) for r in batch])
        spans = inputs.pop("pac_spans")
        inputs = {k: v.to(device) for k, v in inputs.items()}
        n = int((inputs["labels"][:, 1:] != -100).sum())
        loss = model(**inputs, **({"pac_spans": spans} if pac else {})).loss
        total += float(loss) * n
        tokens += n
    return total / tokens
