"""MultiSmpLLM model side: LoRA SFT on the cold-start instructions and batched answering.

Step 1 of the method (§2.3, "LoRA 微调"): teach the base model the question format and the scale of the numbers.
We use TRL's ``SFTTrainer`` with a peft LoRA config on *conversational prompt/completion* records, so the loss
is on the answer tokens only (TRL's ``completion_only_loss``) and the prompt is rendered by the tokenizer's
chat template exactly as at inference. After training the adapter is merged (``merge_and_unload``): the SFT
model is then a plain model that serves as both the policy's starting point and the frozen reference of
DPO / IDPOP (:mod:`socialalign_lib.popularity.idpop`), as in the paper's "Llama3-finetune" → alignment.

TRL patches a fused LM head into the model it trains (``model.forward`` becomes an instance attribute);
:func:`unpatch_forward` removes it so a merged model can be deep-copied and trained again without a copy
calling its original's forward.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..runtime import set_threads  # noqa: F401  (re-exported: notebooks 07-08 import it from here)
from .smp_llm import Example, parse_scores

LORA_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoraSettings:
    """LoRA on every attention and MLP projection (the paper fine-tunes Llama3 with LoRA; rank unstated)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = LORA_TARGETS

    def peft_config(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            task_type="CAUSAL_LM",
            bias="none",
        )


@dataclass
class SFTRunConfig:
    """Knobs of :func:`train_sft`. Defaults suit the course's ~1M-parameter model on 2 CPU cores: a high LoRA
    learning rate (tiny models need it), no gradient checkpointing, fp32 (``bf16=False``: TRL turns bf16 on by
    default, which fails or crawls on CPU)."""

    lora: LoraSettings | None = field(default_factory=LoraSettings)  # None: full fine-tuning
    learning_rate: float = 3e-3
    max_steps: int = 300
    batch_size: int = 16
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_length: int = 1024
    answer_end: str = "eos"  # see answer_records
    seed: int = 0
    logging_steps: int = 10
    use_cpu: bool | None = None  # None: CPU when no GPU is visible
    output_dir: str | None = (
        None  # None: a temporary folder (nothing is saved; adapters are merged in memory)
    )


def unpatch_forward(model: Any) -> Any:
    """Remove TRL's fused-LM-head patch (an instance ``forward``) from ``model`` and its wrapped base, in
    place."""
    for m in (
        model,
        getattr(model, "base_model", None),
        getattr(getattr(model, "base_model", None), "model", None),
    ):
        if m is not None and "forward" in vars(m):
            del m.forward
    return model


def _merged(model: Any) -> Any:
    """The trained model as a plain transformers model (LoRA merged into the weights; full FT as is)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def train_and_merge(trainer: Any, adapter_dir: str | os.PathLike | None = None) -> TrainResult:
    """Run a TRL trainer, then return the trained model merged into plain weights (TRL's fused-head patch
    undone, eval mode), its loss history (training rows with ``loss``, evaluation rows with ``eval_loss``) and
    the wall time: the last step of every SFT / DPO / IDPOP run here. ``adapter_dir``: the trained LoRA is also
    saved there (peft's format) before it is merged - what notebook 08's committed runs hold."""
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    if adapter_dir is not None:
        if not hasattr(trainer.model, "peft_config"):
            raise ValueError("adapter_dir needs a LoRA run (full fine-tuning has no adapter to save)")
        trainer.model.save_pretrained(str(adapter_dir))
    history = [h for h in trainer.state.log_history if "loss" in h or "eval_loss" in h]
    return TrainResult(unpatch_forward(_merged(trainer.model)).eval(), history, seconds)


def fresh_copy(model: Any) -> Any:
    """A deep copy that shares nothing with ``model`` (its TRL patch removed first)."""
    return copy.deepcopy(unpatch_forward(model))


ANSWER_ENDS = ("eos", "chat")


def answer_records(
    examples: Sequence[Example], tokenizer: Any, answers: Sequence[str] | None = None, answer_end: str = "eos"
) -> list[dict[str, Any]]:
    """Prompt/completion records; TRL trains on the completion tokens only.

    ``answer_end="chat"``: conversational records, the answer ends with the template's ``<|im_end|>``.
    ``"eos"`` (default): the prompt is the chat template rendered up to the assistant header (so inference
    sees the same text) and the answer ends with the tokenizer's eos, which TRL appends. Why the default: a
    base model pre-trained on plain text has never produced ``<|im_end|>``; its tied embedding row is still
    random, LoRA cannot move it (and peft's ``trainable_token_indices`` breaks TRL 1.16's fused LM head on a
    tied head: ``'TrainableTokensWrapper' object has no attribute 'bias'``), so that one token keeps a loss of
    ~5 nats and its gradient drowns the digits'. The eos the base model already ends every text with costs
    nothing.
    """
    if answer_end not in ANSWER_ENDS:
        raise ValueError(f"answer_end must be one of {ANSWER_ENDS}, got {answer_end!r}")
    answers = [e.answer for e in examples] if answers is None else list(answers)
    if answer_end == "chat":
        return [
            {"prompt": e.messages(), "completion": [{"role": "assistant", "content": a}]}
            for e, a in zip(examples, answers)
        ]
    return [{"prompt": p, "completion": a} for p, a in zip(prompt_texts(tokenizer, examples), answers)]


def trl_arguments(cfg: Any, output_dir: str) -> dict[str, Any]:
    """The TRL trainer arguments every SFT / DPO / IDPOP run here shares, from an :class:`SFTRunConfig` (or a
    config with its fields): nothing saved, nothing reported, fp32, CPU when no GPU is visible."""
    use_cpu = (not torch.cuda.is_available()) if cfg.use_cpu is None else cfg.use_cpu
    return dict(
        output_dir=output_dir,
        learning_rate=cfg.learning_rate,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        warmup_steps=int(cfg.warmup_ratio * cfg.max_steps),
        lr_scheduler_type="cosine",
        weight_decay=cfg.weight_decay,
        logging_steps=cfg.logging_steps,
        save_strategy="no",
        report_to="none",
        bf16=False,
        fp16=False,
        use_cpu=use_cpu,
        activation_checkpointing=False,
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
        max_length=cfg.max_length,
    )


_trl_common = trl_arguments  # the earlier private name


@dataclass
class TrainResult:
    """A merged model, the trainer's log history (loss per logging step) and the wall time."""

    model: Any
    history: list[dict[str, float]]
    seconds: float


def train_sft(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    cfg: SFTRunConfig | None = None,
    adapter_dir: str | os.PathLike | None = None,
) -> TrainResult:
    """LoRA SFT of a *copy* of ``model`` on the train-form examples; returns the merged SFT model.

    ``model`` itself is left untouched (it stays the zero-shot baseline). The examples of all shot counts are
    mixed in one run: one model answers 1-, 2- and 3-shot questions (the paper trains per setting; one run is
    three times cheaper here and each setting still gets its own test table). ``adapter_dir``: see
    :func:`train_and_merge`.
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    cfg = cfg or SFTRunConfig()
    work = fresh_copy(model).train()
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(
            **trl_arguments(cfg, cfg.output_dir or tmp),
            completion_only_loss=True,
            packing=False,
            dataset_num_proc=None,
        )
        trainer = SFTTrainer(
            model=work,
            args=args,
            train_dataset=Dataset.from_list(answer_records(examples, tokenizer, answer_end=cfg.answer_end)),
            processing_class=tokenizer,
            peft_config=None if cfg.lora is None else cfg.lora.peft_config(),
        )
        return train_and_merge(trainer, adapter_dir)


# --------------------------------------------------------------------------------------------------------
# Answering
# --------------------------------------------------------------------------------------------------------


@dataclass
class GenerationSettings:
    """Greedy answers for evaluation; sampling (``do_sample=True``, ``num_return_sequences=2``) for the
    preference pairs of §2.4.1. ``max_new_tokens`` is small on purpose: an answer is a number like "7.5"."""

    max_new_tokens: int = 8
    batch_size: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    num_return_sequences: int = 1
    seed: int = 0
    progress: bool = True


def prompt_texts(tokenizer: Any, examples: Sequence[Example]) -> list[str]:
    """Each example's chat prompt, ending with the assistant header the answer follows."""
    return [
        tokenizer.apply_chat_template(e.messages(), tokenize=False, add_generation_prompt=True)
        for e in examples
    ]


@torch.no_grad()
def generate_answers(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    settings: GenerationSettings | None = None,
    desc: str = "answer",
) -> list[list[str]]:
    """Answer every example; returns ``num_return_sequences`` decoded answers per example, in input order.

    Batches are formed from length-sorted prompts (less padding) and left-padded (decoder-only generation
    continues from the last real token). Special tokens are stripped from the answers.
    """
    s = settings or GenerationSettings()
    texts = prompt_texts(tokenizer, examples)
    order = np.argsort([-len(t) for t in texts], kind="stable")
    device = next(model.parameters()).device
    was_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    out: list[list[str]] = [[] for _ in texts]
    gen = dict(
        max_new_tokens=s.max_new_tokens,
        do_sample=s.do_sample,
        num_return_sequences=s.num_return_sequences,
        pad_token_id=tokenizer.pad_token_id,
    )
    if s.do_sample:
        gen.update(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p)
    else:
        gen.update(temperature=None, top_k=None, top_p=None)
    eos = getattr(model.generation_config, "eos_token_id", None) or tokenizer.eos_token_id
    model.eval()
    rng_devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=rng_devices):  # seeded sampling without touching the caller's RNG
            torch.manual_seed(s.seed)
            for start in tqdm(range(0, len(texts), s.batch_size), desc=desc, disable=not s.progress):
                idx = order[start : start + s.batch_size]
                enc = tokenizer(
                    [texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False
                )
                enc = {k: v.to(device) for k, v in enc.items()}
                ids = model.generate(**enc, eos_token_id=eos, **gen)
                new_ids = ids[:, enc["input_ids"].shape[1] :]
                answers = tokenizer.batch_decode(new_ids, skip_special_tokens=True)
                n = s.num_return_sequences
                for j, i in enumerate(idx):
                    out[i] = [a.strip() for a in answers[j * n : (j + 1) * n]]
    finally:
        tokenizer.padding_side = was_side
    return out


def predict_scores(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    settings: GenerationSettings | None = None,
    desc: str = "answer",
) -> tuple[np.ndarray, list[str]]:
    """Greedy answers parsed to floats (NaN = no number) and the raw answers (keep them: failures are
    shown)."""
    texts = [a[0] for a in generate_answers(model, tokenizer, examples, settings, desc)]
    return parse_scores(texts), texts


def resolve_base_model(
    base_model: str | os.PathLike | None = None,
    *,
    fallback_texts: Sequence[str] = (),
    fallback_steps: int = 100,
    load_in_4bit: bool = False,
    device: str = "auto",
    fallback_dir: str | os.PathLike | None = None,
) -> tuple[Any, Any, str]:
    """``(model, tokenizer, description)`` for the notebook's ``base_model`` parameter.

    ``None`` → the course's embedded model (``paths.EMBEDDED_MODEL``) through ``models.load_base_model``; any
    other value is a local folder or hub id. If the embedded folder does not exist yet (it is built by
    ``make model``), a stand-in is built the same way (``models.build_base_model``: tokenizer, tiny Qwen2,
    ``fallback_steps`` of pre-training on ``fallback_texts``) into ``fallback_dir`` (default: a temporary
    folder) and the description says so - a smaller pre-training budget than the real one.
    """
    from socialalign_lib.models import PretrainConfig, build_base_model, load_base_model
    from socialalign_lib.paths import EMBEDDED_MODEL

    if base_model is not None or (EMBEDDED_MODEL / "config.json").exists():
        source = EMBEDDED_MODEL if base_model is None else base_model
        model, tok = load_base_model(source, load_in_4bit=load_in_4bit, device=device)
        return model, tok, str(source)
    if not fallback_texts:
        raise FileNotFoundError(
            f"{EMBEDDED_MODEL} does not exist (run `make model`) and no fallback texts given"
        )
    out = Path(fallback_dir or tempfile.mkdtemp(prefix="socialalign-tiny-standin-"))
    build_base_model(
        list(fallback_texts),
        out,
        pretrain_cfg=PretrainConfig(max_steps=fallback_steps, progress=False),
        overwrite=True,
    )
    model, tok = load_base_model(out, load_in_4bit=load_in_4bit, device=device)
    return (
        model,
        tok,
        (
            f"stand-in built now ({fallback_steps} pre-training steps on the world's text) because "
            f"{EMBEDDED_MODEL} is missing: run `make model`"
        ),
    )
