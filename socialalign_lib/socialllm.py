"""SocialLLM: a base causal LM fine-tuned on SocialAlign records (PAC-LoRA or plain LoRA), and its replies.

One config, three methods that are trained and evaluated the same way:

* ``"pac_lora"`` — SocialAlign's model: PAC-LoRA experts on every projection, gate A from the news span, gate B
  from the user span (:mod:`socialalign_lib.pac_lora`);
* ``"lora"`` — the plain-LoRA baseline (peft ``LoraConfig``, same ``r``, alpha, dropout and targets);
* ``"base"`` — the zero-shot base model: same prompt through the chat template, no adapter, nothing trained.

    cfg = SocialLLMConfig(method="pac_lora")
    run = train_socialllm(cfg, data.split("train"), default_output_dir(cfg, "course", 0))
    df = generate_replies(run.model, run.tokenizer, data.split("test_user"), GenerationConfig(), "gen.jsonl")

``train_socialllm`` writes ``socialllm.json`` (config, run hash, loss history) next to the peft adapter in
``output_dir``; called again with the same config and training data it loads that run instead of training, so
notebooks 04–06 reuse what notebook 03 trained. An interrupted run resumes from its last Trainer checkpoint.

Sampling uses the official inference settings (temperature 0.7, top-p 0.9, top-k 20, repetition penalty 1.2)
through transformers' own logits processors, but draws each row's token by the Gumbel-max trick with noise seeded
by (seed, case, step): the same record gets the same reply whatever batch it lands in, so a resumed or re-batched
run reproduces the uninterrupted one. One deliberate difference from the official inference: the repetition
penalty spares the stop tokens, which the chat prompt itself contains (:class:`EosExemptRepetitionPenalty`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import paths
from .records import VARIANTS, ChatConfig, build_chat_example, resolve_spans
from .run_files import replies_dir
from .train import SFTConfig, tokenize_dataset, train_sft

METHODS: tuple[str, ...] = ("base", "lora", "pac_lora")
STATE_FILE = "socialllm.json"
ADAPTER_DIR = "adapter"
CHECKPOINT_DIR = "checkpoints"
FORMAT = "socialalign-socialllm/1"
#: Columns of :func:`generate_replies` (and of its JSONL file), in order.
REPLY_COLUMNS: tuple[str, ...] = ("case_id", "topic_id", "user_id", "category", "split", "variant", "reference",
                                  "sentiment", "generated", "gate_a", "gate_b")
_RECORD_FIELDS: tuple[str, ...] = ("case_id", "instruction", "user_span", "news_span")
# SFTConfig fields that do not change the trained weights (left out of the run hash).
_SFT_BOOKKEEPING = frozenset({"output_dir", "resume", "logging_steps", "save_steps", "save_total_limit",
                              "dataloader_num_workers", "per_device_eval_batch_size", "eval_strategy", "eval_steps"})


class SocialLLMError(RuntimeError):
    """A SocialLLM run folder is missing, unfinished or inconsistent (the message names the folder and file)."""


def course_sft_config(**overrides: Any) -> SFTConfig:
    """Training knobs for the embedded model on the ``course`` world: 300 steps of 8 records (~2 epochs of the
    1,119 training records) at learning rate 1e-3, a few minutes per model on one CPU thread. Chosen on the
    validation split's learning curve (notebook 03; the measurements behind the choice are in docs/design.md,
    "The embedded model and the committed adapters"): the reply loss flattens by ~300 steps, and a faster rate
    memorises the 48 training topics. A ~1M-parameter model still needs a rate ~50x the paper's 2e-5."""
    base = dict(max_steps=300, learning_rate=1e-3, per_device_train_batch_size=8, warmup_ratio=0.1,
                logging_steps=10, save_steps=100, save_total_limit=1)
    return SFTConfig(**{**base, **overrides})


@dataclass
class SocialLLMConfig:
    """What to train. Defaults: the paper's PAC-LoRA (n=3, r=8, alpha=16, dropout 0.1, gate hidden 32, the seven
    projections) on the embedded base model, with :func:`course_sft_config` training.

    Args:
        method: ``"base"`` (zero-shot, nothing trained), ``"lora"`` or ``"pac_lora"``.
        base_model: local folder or hub id (e.g. ``"Qwen/Qwen2.5-7B-Instruct"``).
        variant: prompt variant the model is trained on (``full`` / ``without_persona`` / ``without_history``);
            a training set with several variants is filtered to this one.
        n_experts, r, alpha, dropout, gate_hidden: PAC-LoRA's knobs (LoRA uses ``r``, ``alpha``, ``dropout``).
        target_modules: modules to adapt; None = q, k, v, o, gate, up, down projections.
        routing: PAC-LoRA gate routing, ``"sequence"`` (ours, the default: one gate per sequence from the mean of
            each span, cached for decoding) or ``"token"`` (the official per-token routing and decode rule).
        spans: the token spans the gates read (``records.SPAN_SCHEMES``). ``"auto"``: the official spans with
            ``routing="token"`` (gate A: the news block with the trending-hashtag sentence; gate B: every token
            before it, system prompt and chat template included); with ``routing="sequence"`` ours (gate A: the
            news text alone; gate B: user name, five posts and persona). ``"record"`` / ``"official"`` force one.
        load_in_4bit: NF4 base weights (QLoRA): CUDA, or CPU with bitsandbytes >= 0.50. The official run is not
            quantised (bf16 weights).
        dtype: base weights' dtype (``"bfloat16"``, ``"float16"``, ``"float32"``); None: float32 on CPU and the
            checkpoint's own dtype on CUDA (``models.load_base_model``). The official run: ``"bfloat16"``.
        device: ``"auto"`` (CUDA when visible), ``"cpu"``, ``"cuda"``.
        max_length: longest prompt + reply in tokens (official 1024).
        sft: Trainer knobs (:class:`~socialalign_lib.train.SFTConfig`); ``SFTConfig.official()`` for the paper's.
    """

    method: str = "pac_lora"
    base_model: str = str(paths.EMBEDDED_MODEL)
    variant: str = "full"
    n_experts: int = 3
    r: int = 8
    alpha: float = 16
    dropout: float = 0.1
    target_modules: tuple[str, ...] | None = None
    gate_hidden: int = 32
    routing: str = "sequence"
    spans: str = "auto"
    load_in_4bit: bool = False
    dtype: str | None = None
    device: str = "auto"
    max_length: int = 1024
    sft: SFTConfig = field(default_factory=course_sft_config)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"SocialLLMConfig.method must be one of {METHODS}, got {self.method!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"SocialLLMConfig.variant must be one of {VARIANTS}, got {self.variant!r}")
        if isinstance(self.sft, Mapping):
            self.sft = SFTConfig(**self.sft)
        if self.target_modules is not None:
            self.target_modules = tuple(self.target_modules)
        self.base_model = paths.resolve_portable(self.base_model)  # "data/socialalign-tiny" in committed runs
        resolve_spans(self.spans, self.routing)  # validates
        if self.dtype is not None and not isinstance(getattr(torch, str(self.dtype), None), torch.dtype):
            raise ValueError(f"SocialLLMConfig.dtype must name a torch dtype (e.g. 'bfloat16'), got {self.dtype!r}")

    @property
    def targets(self) -> list[str]:
        from .pac_lora import DEFAULT_TARGET_MODULES

        return list(self.target_modules or DEFAULT_TARGET_MODULES)

    def peft_config(self) -> Any:
        """The adapter's peft config: ``PacLoraConfig`` or ``LoraConfig`` (None for the base model)."""
        if self.method == "pac_lora":
            from .pac_lora import PacLoraConfig

            return PacLoraConfig(n_experts=self.n_experts, r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                                 target_modules=self.targets, gate_hidden=self.gate_hidden, routing=self.routing,
                                 spans=self.spans)
        if self.method == "lora":
            from peft import LoraConfig

            return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=self.targets,
                              bias="none", task_type="CAUSAL_LM")
        return None

    def chat_config(self) -> ChatConfig:
        """How records become prompts for this model: ``max_length`` and the resolved span scheme (plain LoRA and
        the base model read no spans: ``"record"``)."""
        spans = resolve_spans(self.spans, self.routing) if self.method == "pac_lora" else "record"
        return ChatConfig(max_length=self.max_length, spans=spans)

    def to_dict(self) -> dict[str, Any]:
        """Plain values; a base model inside the repository as its repository-relative path (``paths.portable``),
        so the config, its hash and a committed run do not depend on where the repository is checked out."""
        out = asdict(self)
        out["base_model"] = paths.portable(self.base_model)
        out["target_modules"] = list(self.target_modules) if self.target_modules is not None else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SocialLLMConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def config_hash(self) -> str:
        """sha256 of everything that changes the trained weights (not the device, folders or logging)."""
        data = self.to_dict()
        data.pop("device")
        for key, default in (("spans", "auto"), ("dtype", None)):  # runs from before these options keep their hash
            if data[key] == default:
                data.pop(key)
        data["sft"] = {k: v for k, v in data["sft"].items() if k not in _SFT_BOOKKEEPING}
        if self.method == "base":  # nothing is trained: only the model identifies the run
            data = {"method": "base", "base_model": paths.portable(self.base_model), "load_in_4bit": self.load_in_4bit}
        return _sha256(data)


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
        return sum(p.numel() for name, p in self.model.named_parameters() if ".pac_" in name or ".lora_" in name)


def _sha256(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def dataset_fingerprint(records: Iterable[Mapping[str, Any]]) -> str:
    """sha256 of the records' ids, prompts, spans and replies: the same world and split give the same value."""
    digest = hashlib.sha256()
    for rec in records:
        digest.update(json.dumps([rec.get("case_id"), rec.get("variant"), rec["instruction"], rec.get("output"),
                                  list(rec["user_span"]), list(rec["news_span"])], ensure_ascii=False).encode())
    return digest.hexdigest()


def _base_fingerprint(name_or_path: str) -> str:
    """The base model's identity: its name, and for a local folder the hash of its config and weights index."""
    local = Path(name_or_path).expanduser()
    parts = [paths.portable(name_or_path)]
    if local.is_dir():
        for name in ("config.json", "build_info.json", "model.safetensors.index.json"):
            file = local / name
            if file.exists():
                parts.append(hashlib.sha256(file.read_bytes()).hexdigest())
    return _sha256(parts)


#: Optimizer steps (batch 8) per world size for :func:`socialllm_config`: ~3 minutes per model at "course" on CPU;
#: "large" keeps the course budget (set ``max_steps`` for a real large run). ``evaluation.sft_for_size`` (notebooks
#: 05-06) builds the same training config, so every notebook finds the same run folder.
SIZE_STEPS: dict[str, int] = {"tiny": 8, "course": 300, "large": 300}
#: The official plain-LoRA baseline's learning rate (PAC-LoRA: 2e-5), used with ``official_hparams=True``.
OFFICIAL_LORA_LR = 5e-6


def socialllm_config(method: str, size: str = "course", seed: int = 0, official_hparams: bool = False,
                     max_steps: int | None = None, **overrides: Any) -> SocialLLMConfig:
    """The course's config for ``method`` at a world ``size``: what notebooks 03-06 build, so they find the same
    run folder (:func:`default_output_dir`) and train each model once.

    Training: :func:`course_sft_config` with ``SIZE_STEPS[size]`` steps (or ``max_steps``) and the run ``seed``;
    ``official_hparams`` switches to the paper's recipe (``SFTConfig.official()``: 2 epochs, batch 1 x 16,
    lr 2e-5 for PAC-LoRA and 5e-6 for plain LoRA, bf16, gradient checkpointing). ``overrides``: other config
    fields (``base_model``, ``load_in_4bit``, ``device``, ``variant``, ``sft``, ...).
    """
    if size not in SIZE_STEPS:
        raise ValueError(f"unknown world size {size!r}; choose one of {sorted(SIZE_STEPS)}")
    if "sft" not in overrides:
        steps = {"max_steps": max_steps} if max_steps is not None else {}
        if official_hparams:
            lr = {"learning_rate": OFFICIAL_LORA_LR} if method == "lora" else {}
            overrides["sft"] = SFTConfig.official(seed=seed, **lr, **steps)
        else:
            n = max_steps if max_steps is not None else SIZE_STEPS[size]
            overrides["sft"] = course_sft_config(seed=seed, max_steps=n, logging_steps=max(1, min(5, n // 4)))
    return SocialLLMConfig(method=method, **overrides)


def generations_path(run: TrainedSocialLLM, gen: GenerationConfig, name: str) -> Path | None:
    """``<run>/replies/<name>-<hash8 of gen>.jsonl``: where :func:`generate_replies` keeps (and resumes) one set
    of replies of this run, in the run's one replies folder (:func:`run_files.replies_dir`, shared with the CLI's
    :func:`run_files.replies_path`); None for a run without a folder. ``name`` says which records (e.g.
    ``heldout-96``); the hash of ``gen`` keeps replies sampled with other settings apart."""
    if run.output_dir is None:
        return None
    return replies_dir(run.output_dir) / f"{name}-{_sha256(asdict(gen))[:8]}.jsonl"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(text).name or text)[:40]


def default_output_dir(cfg: SocialLLMConfig, size: str, seed: int, committed: bool = True) -> Path:
    """``outputs/socialllm/<size>-seed<seed>/<base>-<method>-<variant>-<hash8>`` (git-ignored). The config hash in
    the name keeps runs of different configs apart; the world (size, seed) names the training data.

    ``committed`` (default): when the repository ships this run (``data/checkpoints/<size>-seed<seed>/<name>``,
    written by ``make checkpoints``), that folder instead, so notebooks load the converged adapters rather than
    train them; :func:`train_socialllm` refuses to overwrite a committed run that no longer matches its data
    (``committed=False``, the notebooks' ``retrain=True``, trains a fresh copy under ``outputs/``)."""
    name = run_name(cfg)
    shipped = paths.CHECKPOINTS_DIR / f"{size}-seed{seed}" / name
    if committed and (shipped / STATE_FILE).exists():
        return shipped
    return paths.OUTPUTS_DIR / "socialllm" / f"{size}-seed{seed}" / name


def run_name(cfg: SocialLLMConfig) -> str:
    """``<base>-<method>-<variant>-<hash8>``: a run folder's name, the same under ``outputs/`` and ``data/checkpoints``."""
    return f"{_slug(cfg.base_model)}-{cfg.method}-{cfg.variant}-{cfg.config_hash()[:8]}"


def run_hash(cfg: SocialLLMConfig, train_dataset: Any) -> str:
    """What identifies a finished run: the config hash, the base model's fingerprint and the training records'
    (``cfg.variant`` only). A committed checkpoint is current when its ``socialllm.json`` holds this value."""
    records = _records(_select_variant(train_dataset, cfg.variant)) if cfg.method != "base" else []
    return _run_hash(cfg, records)


def _run_hash(cfg: SocialLLMConfig, records: list[dict[str, Any]]) -> str:
    return _sha256([cfg.config_hash(), _base_fingerprint(cfg.base_model),
                    dataset_fingerprint(records) if cfg.method != "base" else ""])


def _is_committed(out: Path) -> bool:
    try:
        out.resolve().relative_to(paths.CHECKPOINTS_DIR.resolve())
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------------------ training


def as_records(data: Any) -> list[dict[str, Any]]:
    """A ``datasets.Dataset``, a pandas frame or an iterable of dicts as a list of dicts."""
    if hasattr(data, "to_list"):
        return data.to_list()
    if isinstance(data, pd.DataFrame):
        return data.to_dict("records")
    return [dict(r) for r in data]


_records = as_records  # the earlier private name


def _select_variant(dataset: Any, variant: str) -> Any:
    has_variants = hasattr(dataset, "column_names") and "variant" in dataset.column_names
    if has_variants and set(dataset.unique("variant")) != {variant}:
        return dataset.filter(lambda v: v == variant, input_columns="variant")
    return dataset


def _load_base(cfg: SocialLLMConfig) -> tuple[Any, Any]:
    from .models import load_base_model

    dtype = getattr(torch, cfg.dtype) if cfg.dtype is not None else None
    return load_base_model(cfg.base_model, load_in_4bit=cfg.load_in_4bit, device=cfg.device, dtype=dtype)


def read_run_state(output_dir: Path) -> dict[str, Any] | None:
    """The run's ``STATE_FILE`` (config, hashes, versions) or None when the folder has none (yet)."""
    file = output_dir / STATE_FILE
    if not file.exists():
        return None
    from .io import read_json

    return read_json(file)


_read_state = read_run_state  # the earlier private name


def _write_state(output_dir: Path, state: dict[str, Any]) -> None:
    from .io import write_json

    write_json(output_dir / STATE_FILE, state)


def _versions() -> dict[str, str]:
    import peft
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def train_socialllm(cfg: SocialLLMConfig, train_dataset: Any, output_dir: str | Path | None = None,
                    eval_dataset: Any | None = None, progress: bool = True, callbacks: list | None = None,
                    write_committed: bool = False) -> TrainedSocialLLM:
    """Train a SocialLLM on SocialAlign records, or load the finished run with the same hash from ``output_dir``.

    The run hash covers the config (:meth:`SocialLLMConfig.config_hash`), the base model and the training records
    (:func:`dataset_fingerprint`), so a different world or split is never mistaken for a finished run. Checkpoints
    go to ``output_dir/checkpoints`` while training (``cfg.sft.save_steps``) and are resumed from when a run with
    the same hash was interrupted; they are deleted once the adapter is saved. Method ``"base"`` trains nothing.

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

    train_dataset = _select_variant(train_dataset, cfg.variant)
    records = _records(train_dataset)
    if cfg.method != "base" and not records:
        raise ValueError(f"train_socialllm: no training records of variant {cfg.variant!r}")
    expected = _run_hash(cfg, records)
    out = Path(output_dir) if output_dir is not None else None
    if out is not None:
        state = _read_state(out)
        if state and state.get("finished") and state.get("run_hash") == expected:
            return load_socialllm(out)
        if state and _is_committed(out) and not write_committed:
            raise SocialLLMError(
                f"{out}: this committed checkpoint was trained on other data or another base model than this run's "
                "(its socialllm.json run_hash differs). Rebuild the committed checkpoints with `make checkpoints`, "
                "or train a fresh copy (the notebooks' retrain=True; default_output_dir(..., committed=False)).")
        if state and state.get("run_hash") != expected:
            # checkpoints and replies of another config, base model or dataset: never resume from or reuse them
            shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
            shutil.rmtree(replies_dir(out), ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        _write_state(out, {"format": FORMAT, "run_hash": expected, "finished": False, "config": cfg.to_dict()})

    model, tokenizer = _load_base(cfg)
    history: list[dict[str, float]] = []
    seconds = 0.0
    if cfg.method != "base":
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        with warnings.catch_warnings():
            # transformers 5.24 deprecates the name ``gradient_checkpointing`` that Trainer/peft still use inside
            warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.*deprecated", category=FutureWarning)
            try:
                model, history, seconds = _train_adapter(cfg, model, tokenizer, train_dataset, eval_dataset, out,
                                                         progress, callbacks)
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
        _write_state(out, {"format": FORMAT, "run_hash": expected, "finished": True, "config": cfg.to_dict(),
                           "config_hash": cfg.config_hash(), "n_train": len(records), "train_seconds": seconds,
                           "history": history, "versions": _versions(), "adapter_sha256": adapter_sha256})
    _barrier()  # the other ranks return only once the adapter is on disk
    return TrainedSocialLLM(model, tokenizer, history, out, cfg, seconds)


def _is_main_process() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _train_adapter(cfg: SocialLLMConfig, model: Any, tokenizer: Any, train_dataset: Any, eval_dataset: Any,
                   out: Path | None, progress: bool, callbacks: list | None = None
                   ) -> tuple[Any, list[dict[str, float]], float]:
    """Wrap ``model`` in the adapter (seeded), tokenise, train with ``train.train_sft``; (model, history, seconds)."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    from .pac_lora import get_pac_model

    if cfg.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.sft.gradient_checkpointing)
    torch.manual_seed(cfg.sft.seed)  # the adapter's initial weights
    if cfg.method == "pac_lora":
        model = get_pac_model(model, cfg.peft_config())
    else:
        model = get_peft_model(model, cfg.peft_config())
    chat = cfg.chat_config()
    train_tok = tokenize_dataset(train_dataset, tokenizer, chat, desc="tokenise train")
    eval_tok = None
    if eval_dataset is not None:
        eval_tok = tokenize_dataset(_select_variant(eval_dataset, cfg.variant), tokenizer, chat, desc="tokenise eval")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = (out / CHECKPOINT_DIR) if out is not None else Path(tmp)
        sft = replace(cfg.sft, output_dir=str(ckpt), extra={**cfg.sft.extra, "disable_tqdm": not progress})
        start = time.perf_counter()
        trainer, _ = train_sft(model, tokenizer, train_tok, sft, eval_dataset=eval_tok,
                               use_spans=cfg.method == "pac_lora", callbacks=callbacks)
        seconds = time.perf_counter() - start
    # The Trainer's log history, not only this call's rows: a resumed run restores the earlier rows from its
    # checkpoint, so the saved loss curve covers the whole run.
    history = [{"step": int(row["step"]), **{k: float(v) for k, v in row.items()
                                            if k != "step" and isinstance(v, (int, float))}}
               for row in trainer.state.log_history]
    return trainer.model, history, seconds


ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def portable_adapter(adapter_dir: str | Path) -> None:
    """Make a saved adapter folder independent of the checkout: peft writes the base model's absolute path into
    ``adapter_config.json`` and a boilerplate model card ``README.md`` that repeats it; the path becomes
    repository-relative (``paths.portable``) and the card is dropped (``socialllm.json`` documents the run)."""
    from .io import read_json, write_json

    folder = Path(adapter_dir)
    config = folder / ADAPTER_CONFIG
    if config.exists():
        data = read_json(config)
        if data.get("base_model_name_or_path"):
            data["base_model_name_or_path"] = paths.portable(data["base_model_name_or_path"])
        write_json(config, data)
    (folder / "README.md").unlink(missing_ok=True)


def adapter_checksums(adapter_dir: str | Path) -> dict[str, str]:
    """``{file name: sha256}`` of an adapter folder's files, recorded in the run file to verify them on load."""
    out = {}
    for f in sorted(Path(adapter_dir).iterdir()):
        if f.is_file():
            digest = hashlib.sha256()
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            out[f.name] = digest.hexdigest()
    return out


def read_finished_state(output_dir: str | Path) -> dict[str, Any]:
    """The run file of a finished :func:`train_socialllm` run; :class:`SocialLLMError` otherwise."""
    out = Path(output_dir)
    state = _read_state(out) if out.is_dir() else None
    if state is None:
        raise SocialLLMError(f"{out / STATE_FILE}: not found; train with train_socialllm(cfg, data, {str(out)!r})")
    if not state.get("finished"):
        raise SocialLLMError(f"{out / STATE_FILE}: the run did not finish; call train_socialllm again to resume it")
    return state


def verify_adapter(output_dir: str | Path, state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Check a finished run's adapter files before any of them is used; return ``{tensor name: shape}``.

    Why: a missing weights file makes peft look the path up on the Hub as a repo id, and corrupted bytes end in
    a JSON error of the safetensors header; both say nothing about the adapter. Checked here: both files
    exist, their sha256 matches the one recorded in the run file (runs trained before the checksum existed
    skip this step), and the weights header reads.
    """
    adapter = Path(output_dir) / ADAPTER_DIR
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (adapter / name).is_file():
            raise SocialLLMError(f"{adapter / name}: missing although {STATE_FILE} says the run finished; "
                                 "train again (or restore the file)")
    recorded = state.get("adapter_sha256") or {}
    actual = adapter_checksums(adapter) if recorded else {}
    for name, digest in recorded.items():
        if actual.get(name) != digest:
            raise SocialLLMError(f"{adapter / name}: " + ("missing" if name not in actual else
                                 "checksum differs from the one recorded in " + STATE_FILE + " (a corrupted or "
                                 "replaced file)") + "; train again (or restore the file)")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(adapter / ADAPTER_WEIGHTS), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 - safe_open has no iter
    except (SafetensorError, OSError, ValueError) as err:
        raise SocialLLMError(f"{adapter / ADAPTER_WEIGHTS}: not a readable safetensors file ({err})") from None


def _check_loaded_adapter(model: Any, shapes: Mapping[str, tuple[int, ...]], adapter: Path) -> None:
    """The file's tensors must be exactly the ones the adapter config makes (peft only warns on missing keys and
    would run with those weights at their random initialisation)."""
    from peft import get_peft_model_state_dict

    expected = {k: tuple(v.shape) for k, v in get_peft_model_state_dict(model).items()}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = sorted(k for k in set(expected) & set(shapes) if expected[k] != shapes[k])
    if missing or unexpected or wrong:
        parts = [f"{len(v)} {what} (e.g. {v[0]})" for what, v in
                 (("missing", missing), ("unexpected", unexpected), ("of another shape", wrong)) if v]
        raise SocialLLMError(f"{adapter / ADAPTER_WEIGHTS}: does not match its adapter config: "
                             + ", ".join(parts) + " tensor(s)")


def load_socialllm(output_dir: str | Path) -> TrainedSocialLLM:
    """Load a finished run written by :func:`train_socialllm` (base model + adapter, eval mode).

    The adapter is verified first (:func:`verify_adapter`: files, checksum, header) and after loading (tensor
    names and shapes against the config).

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
                from .pac_lora import load_pac_model

                model = load_pac_model(model, str(adapter))
            else:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(adapter))
        except (RuntimeError, ValueError, KeyError) as err:  # e.g. "size mismatch for ..."
            raise SocialLLMError(f"{adapter}: cannot be loaded onto {cfg.base_model} ({str(err)[:300]})") from None
        _check_loaded_adapter(model, shapes, adapter)
    return TrainedSocialLLM(model.eval(), tokenizer, list(state.get("history", [])), out, cfg,
                            float(state.get("train_seconds", 0.0)), loaded=True)


def untrained_socialllm(cfg: SocialLLMConfig) -> TrainedSocialLLM:
    """The adapter exactly as :func:`train_socialllm` initialises it (same seed), without training: the reference
    for "what did training change?". With B = 0 at init its replies are the base model's; its gates are the
    random initial gate MLPs applied to the spans."""
    model, tokenizer = _load_base(cfg)
    if cfg.method != "base":
        from peft import get_peft_model

        from .pac_lora import get_pac_model

        torch.manual_seed(cfg.sft.seed)
        model = (get_pac_model if cfg.method == "pac_lora" else get_peft_model)(model, cfg.peft_config())
    return TrainedSocialLLM(model.eval(), tokenizer, [], None, cfg)


@torch.no_grad()
def reply_loss(model: Any, tokenizer: Any, records: Any, batch_size: int = 16,
               chat_config: ChatConfig | None = None) -> float:
    """Mean cross-entropy (nats per token) of the real replies given their prompts: the training loss measured on
    other records (e.g. the validation split), comparable across base, LoRA and PAC-LoRA."""
    from .train import SpanCollator

    rows = _records(records)
    if not rows:
        raise ValueError("reply_loss: no records")
    chat = chat_config or model_chat_config(model)
    collate = SpanCollator(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    device, pac = _model_device(model), is_pac_model(model)
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


# ------------------------------------------------------------------------------------------------ generation


@dataclass
class GenerationConfig:
    """Decoding settings. Defaults = the official SocialAlign inference (one sample per (user, topic)), with
    fewer new tokens: the world's replies are at most 21 tokens of the course tokenizer (mean 7.6), so 32 leaves
    room for every real reply and stops a run-on reply early (a batch decodes as long as its longest row; the
    official inference allows 256 for real Weibo posts). ``do_sample=False`` is greedy: the argmax after the repetition
    penalty (set ``repetition_penalty=1.0`` for the plain argmax); temperature, top-p and top-k then do nothing.

    Args:
        batch_size: prompts per ``generate`` call (left padded).
        seed: with the case id and the step, seeds each row's sampling noise (see :func:`generate_replies`).
        penalize_eos: apply the repetition penalty to the stop tokens too, as transformers (and so the official
            inference) does; off by default because the chat prompt contains ``<|im_end|>`` and a small model
            penalised on it never stops (see :class:`EosExemptRepetitionPenalty`).
    """

    do_sample: bool = True
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 20
    repetition_penalty: float = 1.2
    max_new_tokens: int = 32
    batch_size: int = 16
    seed: int = 0
    penalize_eos: bool = False

    @classmethod
    def greedy(cls, **overrides: Any) -> GenerationConfig:
        return cls(**{"do_sample": False, **overrides})


class EosExemptRepetitionPenalty:
    """transformers' repetition penalty, except for the end-of-turn / end-of-text ids.

    Why: the penalty divides the logit of every token already in the sequence, and the chat template puts
    ``<|im_end|>`` into every prompt (after the system and the user message). A 7B model's end-of-turn logit
    survives that; a small model's does not, and it then never stops (measured on the course model: greedy
    replies 7x the real length with the penalty on ``<|im_end|>``, as long as the real ones without). The penalty
    is meant against repeating *content*, so the stop tokens keep their unpenalised logits
    (``GenerationConfig.penalize_eos=True`` restores the official behaviour).
    """

    def __init__(self, penalty: float, eos_ids: Sequence[int], prompt_ignore_length: torch.Tensor | None = None):
        from transformers import RepetitionPenaltyLogitsProcessor

        self.penalty = RepetitionPenaltyLogitsProcessor(float(penalty), prompt_ignore_length=prompt_ignore_length)
        self.eos_ids = torch.as_tensor(list(eos_ids), dtype=torch.long)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        penalised = self.penalty(input_ids, scores)
        if len(self.eos_ids):
            eos = self.eos_ids.to(scores.device)
            penalised[:, eos] = scores[:, eos]
        return penalised


class RowSeededGumbel:
    """Logits processor that turns greedy decoding into sampling with per-row, per-step seeded noise.

    Gumbel-max: ``argmax(scores + G)`` with ``G = -log(-log U)``, ``U ~ Uniform(0, 1)`` i.i.d. per token, is a
    draw from ``softmax(scores)``; tokens removed by top-k / top-p are ``-inf`` and stay out. The noise of row
    ``i`` at step ``t`` comes from a generator seeded by ``(seed, keys[i], t)``, so a row's sample does not depend
    on which other rows share its batch (transformers' sampler draws one ``multinomial`` for the whole batch).
    """

    def __init__(self, keys: Sequence[str], seed: int, prompt_width: int) -> None:
        self.keys = list(keys)
        self.seed = seed
        self.prompt_width = prompt_width

    def _row_seed(self, key: str, step: int) -> int:
        digest = hashlib.sha256(f"{self.seed}|{key}|{step}".encode()).digest()
        return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_width
        if scores.shape[0] != len(self.keys):
            raise ValueError(f"RowSeededGumbel has {len(self.keys)} row keys but the batch has {scores.shape[0]} rows")
        noise = torch.empty(scores.shape, dtype=torch.float32)
        generator = torch.Generator()
        for i, key in enumerate(self.keys):
            generator.manual_seed(self._row_seed(key, step))
            noise[i] = torch.rand(scores.shape[1], generator=generator, dtype=torch.float32)
        gumbel = -torch.log(-torch.log(noise.clamp(1e-10, 1.0 - 1e-7)))
        return scores + gumbel.to(scores.device, scores.dtype)


def model_chat_config(model: nn.Module) -> ChatConfig:
    """The prompt config a model was trained with, read from the model: a PAC-LoRA adapter's span scheme
    (``PacLoraConfig.spans``, saved with the adapter), the record's spans otherwise."""
    if not is_pac_model(model):
        return ChatConfig()
    from .pac_lora import pac_tuner

    try:
        configs = pac_tuner(model).peft_config
    except TypeError:  # PAC-LoRA layers without a PacLoraModel around them
        return ChatConfig()
    config = configs.get("default") or next(iter(configs.values()))
    return ChatConfig(spans=config.span_scheme)


def is_pac_model(model: nn.Module) -> bool:
    """True when ``model`` carries PAC-LoRA layers (then it needs spans and reports gates)."""
    from .pac_lora import PacLoraLayer

    return any(isinstance(m, PacLoraLayer) for m in model.modules())


@contextmanager
def gate_mode(model: nn.Module, mode: str | None) -> Iterator[None]:
    """Run a block with PAC-LoRA gates switched to ``mode`` (``"uniform"``, ``"uniform_a"``, ``"uniform_b"``,
    ``"learned"``), restoring each layer's previous mode afterwards: the "uniform gates" ablation of a trained
    adapter at evaluation time. ``None`` changes nothing.

    Raises:
        ValueError: a mode other than None / ``"learned"`` on a model without PAC-LoRA layers.
    """
    if mode is None:
        yield
        return
    from .pac_lora import PacLoraLayer, set_gate_mode

    layers = [m for m in model.modules() if isinstance(m, PacLoraLayer)]
    if not layers:
        if mode == "learned":
            yield
            return
        raise ValueError(f"gate_mode={mode!r} needs a PAC-LoRA model, got {type(model).__name__} without PAC-LoRA layers")
    previous = [dict(layer.gate_mode) for layer in layers]
    set_gate_mode(model, mode)
    try:
        yield
    finally:
        for layer, modes in zip(layers, previous):
            layer.gate_mode.update(modes)


def prompt_ids_with_spans(tokenizer: Any, record: Mapping[str, Any], chat: ChatConfig) -> tuple[list[int], list[list[int]]]:
    """Prompt token ids (chat template with the generation prompt) and ``[[user], [news]]`` token spans."""
    example = build_chat_example(tokenizer, {**record, "output": record.get("output") or ""}, chat)
    n = example["prompt_length"]
    return example["input_ids"][:n], [list(example["user_span"]), list(example["news_span"])]


_prompt = prompt_ids_with_spans  # the earlier private name


def _left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[batch, width]`` ids and attention mask, padded on the left (generation continues every row at the end)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.as_tensor(list(p), dtype=torch.long)
        mask[i, width - len(p):] = 1
    return ids, mask


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Token ids that end a reply: the model's ``generation_config.eos_token_id`` (one or several), ``<|im_end|>``
    and the tokenizer's eos, each once (``model`` may be None: the vLLM backend has only the tokenizer)."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = list(eos) if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else [])
    for token in ("<|im_end|>", tokenizer.eos_token):
        tid = tokenizer.convert_tokens_to_ids(token) if token else None
        if isinstance(tid, int) and tid >= 0 and tid != tokenizer.unk_token_id and tid not in ids:
            ids.append(tid)
    return ids


_eos_ids = stop_token_ids  # the earlier private name


def _layer_mean_gates(model: nn.Module, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Gates of the latest prefill averaged over adapted layers: ``([batch, n], [batch, n])``.

    Token routing (``[batch, seq, n]`` per layer) is first averaged over each span's tokens."""
    from .pac_lora import NEWS, USER, gate_weights, pac_tuner
    from .pac_lora.spans import span_masks

    per_layer = gate_weights(model)
    gate_a = [a for a, _ in per_layer.values()]
    gate_b = [b for _, b in per_layer.values()]
    if gate_a[0].dim() == 3:
        prefill = pac_tuner(model).router.prefill
        masks = span_masks(prefill.spans, prefill.seq).float()  # [batch, 2, seq]
        weights = masks / masks.sum(-1, keepdim=True).clamp(min=1)
        gate_a = [torch.einsum("bs,bsn->bn", weights[:, NEWS].to(a), a) for a in gate_a]
        gate_b = [torch.einsum("bs,bsn->bn", weights[:, USER].to(b), b) for b in gate_b]
    mean_a = torch.stack(gate_a).float().mean(0).cpu().numpy()
    mean_b = torch.stack(gate_b).float().mean(0).cpu().numpy()
    if mean_a.shape[0] != batch:
        raise RuntimeError(f"gates cover {mean_a.shape[0]} rows, expected {batch}")
    return mean_a, mean_b


def reply_key(record: Mapping[str, Any]) -> str:
    """``case_id|variant``: what keys a reply in a replies file (resume skips the keys already there)."""
    return f"{record['case_id']}|{record.get('variant', '')}"


_row_key = reply_key  # the earlier private name


def check_records(records: list[dict[str, Any]]) -> None:
    """Every record has the fields generation needs and a unique :func:`reply_key`; raises naming the record."""
    for i, rec in enumerate(records):
        missing = [f for f in _RECORD_FIELDS if f not in rec or rec[f] is None]
        if missing:
            raise ValueError(f"record {i} (case {rec.get('case_id')!r}): missing field(s) {missing}")
    keys = [reply_key(r) for r in records]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"records repeat (case_id, variant) {dup!r}: each reply is keyed by it")


_check_records = check_records  # the earlier private name


REPLACEMENT_CHAR = "\ufffd"
_MAX_CUT_TOKENS = 3  # a UTF-8 character has at most 4 bytes: at most 3 of them end a cut-off generation


def decode_complete(tokenizer: Any, ids: Sequence[int] | torch.Tensor) -> str:
    """Generated token ids → text that ends on a complete character and holds no U+FFFD.

    A byte-level BPE (Qwen, GPT-2) spends up to four tokens on one character (emoji, rare CJK). When generation
    stops at ``max_new_tokens`` between them, ``tokenizer.decode`` shows the unfinished bytes as U+FFFD. So the
    last tokens are dropped, at most three, until the text ends on a complete character. A U+FFFD that remains
    is a byte sequence the model wrote that is no character at all (a lead byte followed by ASCII): it is
    removed, since the course's text never holds U+FFFD (``clean.clean_text`` strips export damage).
    Special tokens (end of text, pads) are skipped, as ``skip_special_tokens=True`` does.
    """
    special = set(tokenizer.all_special_ids)
    row = [int(i) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids) if int(i) not in special]
    text = tokenizer.decode(row, skip_special_tokens=True)
    if text.endswith(REPLACEMENT_CHAR):
        for cut in range(1, min(_MAX_CUT_TOKENS, len(row)) + 1):
            shorter = tokenizer.decode(row[:-cut], skip_special_tokens=True)
            if not shorter.endswith(REPLACEMENT_CHAR):
                text = shorter
                break
    return text.replace(REPLACEMENT_CHAR, "")


def reply_row(rec: Mapping[str, Any], text: str, gate_a: Sequence[float], gate_b: Sequence[float]) -> dict:
    """One replies-file row (:data:`REPLY_COLUMNS`): the record's ids and reference with the generated text and
    the mean gates (empty lists where the backend does not report them)."""
    return {"case_id": rec["case_id"], "topic_id": rec.get("topic_id"), "user_id": rec.get("user_id"),
            "category": rec.get("category"), "split": rec.get("split"), "variant": rec.get("variant"),
            "reference": rec.get("output"), "sentiment": rec.get("sentiment"), "generated": text,
            "gate_a": [float(x) for x in gate_a], "gate_b": [float(x) for x in gate_b]}


_output_row = reply_row  # the earlier private name


def batched(items: list, size: int) -> Iterator[list]:
    """Consecutive slices of ``items`` of ``size`` (the last one shorter)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


_batches = batched  # the earlier private name


def _model_device(model: nn.Module) -> torch.device:
    return next(p for p in model.parameters()).device


@torch.no_grad()
def generate_replies(model: Any, tokenizer: Any, records: Any, gen: GenerationConfig | None = None,
                     out_path: str | Path | None = None, progress: bool = True, gate_mode: str | None = None,
                     chat_config: ChatConfig | None = None) -> pd.DataFrame:
    """One generated reply per record, with the PAC-LoRA gate weights that produced it.

    Prompts are the records' chat prompts (as in training, without the answer), batched ``gen.batch_size`` at a
    time with **left** padding; the spans stay in each row's own coordinates and ``pac_lora.place_spans`` shifts
    them by the row's leading pads. The repetition penalty ignores those pads (transformers'
    ``prompt_ignore_length``) and, unless ``gen.penalize_eos``, the stop tokens (:class:`EosExemptRepetitionPenalty`);
    sampling noise is seeded per row (:class:`RowSeededGumbel`), so a row's reply does not depend on its batch —
    greedy replies are batch-invariant up to float rounding of padded matmuls.

    Args:
        model: base model, LoRA ``PeftModel`` or PAC-LoRA ``PeftModel`` (a ``TrainedSocialLLM.model``).
        records: ``datasets.Dataset`` or dicts with ``case_id``, ``instruction``, ``user_span``, ``news_span``
            (and ``output``, ``sentiment``, ``topic_id``, … which are copied to the result).
        out_path: JSON Lines file; each finished batch is appended atomically (``io.append_jsonl``) and a re-run
            skips the (case_id, variant) pairs already there, so an interrupted run resumes without duplicates.
            The file is locked while this runs (``io.exclusive_output``): a second writer gets ``OutputLockedError``.
            Rows already in the file are trusted as they are: keep one file per model and decoding config
            (:func:`generations_path`).
        gate_mode: evaluate a PAC-LoRA model with its gates switched (e.g. ``"uniform"``), see :func:`gate_mode`.
        chat_config: how prompts are rendered (default: :func:`model_chat_config`, the spans the model was trained
            with, the course system prompt).
    Returns:
        ``DataFrame`` with :data:`REPLY_COLUMNS`, one row per record in input order (rows read back from
        ``out_path`` included). ``gate_a`` / ``gate_b``: gate weights averaged over layers, ``[]`` without PAC-LoRA.
    """
    if out_path is None:
        return _generate_replies(model, tokenizer, records, gen, None, progress, gate_mode, chat_config)
    from .io import exclusive_output

    with exclusive_output(out_path, "replies file"):  # a second writer would append every row again
        return _generate_replies(model, tokenizer, records, gen, out_path, progress, gate_mode, chat_config)


def _generate_replies(model: Any, tokenizer: Any, records: Any, gen: GenerationConfig | None,
                      out_path: str | Path | None, progress: bool, gate_mode: str | None,
                      chat_config: ChatConfig | None) -> pd.DataFrame:
    from tqdm.auto import tqdm
    from transformers import GenerationConfig as HFGenerationConfig
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from .pac_lora import leading_pad_counts

    gen = gen or GenerationConfig()
    chat = chat_config or model_chat_config(model)
    rows = as_records(records)
    check_records(rows)
    done: dict[str, dict[str, Any]] = {}
    if out_path is not None and Path(out_path).exists():
        from .io import read_jsonl

        done = {reply_key(r): r for r in read_jsonl(out_path, torn_tail="repair")}
    todo = [r for r in rows if reply_key(r) not in done]
    pac = is_pac_model(model)
    device = _model_device(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos_ids = stop_token_ids(model, tokenizer)
    # Every decoding knob is explicit: the model's own generation_config (e.g. Qwen's top_k=20, penalty 1.05)
    # must not leak in, and the sampling is done by our processors on top of greedy selection.
    hf_gen = HFGenerationConfig(max_new_tokens=gen.max_new_tokens, do_sample=False, num_beams=1,
                                repetition_penalty=1.0, temperature=1.0, top_p=1.0, top_k=0,
                                eos_token_id=eos_ids, pad_token_id=pad_id)
    new: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=len(todo), desc="generate", disable=not progress or not todo)
    with _gate_mode_ctx(model, gate_mode if pac else _checked_non_pac_mode(model, gate_mode)):
        for batch in batched(todo, gen.batch_size):
            encoded = [prompt_ids_with_spans(tokenizer, r, chat) for r in batch]
            ids, mask = _left_pad([e[0] for e in encoded], pad_id)
            processors = LogitsProcessorList()
            if gen.repetition_penalty != 1.0:
                processors.append(EosExemptRepetitionPenalty(gen.repetition_penalty,
                                                             [] if gen.penalize_eos else eos_ids,
                                                             prompt_ignore_length=leading_pad_counts(mask)))
            if gen.do_sample:
                processors.extend([TemperatureLogitsWarper(gen.temperature), TopKLogitsWarper(gen.top_k),
                                   TopPLogitsWarper(gen.top_p),
                                   RowSeededGumbel([reply_key(r) for r in batch], gen.seed, ids.shape[1])])
            kwargs: dict[str, Any] = {"input_ids": ids.to(device), "attention_mask": mask.to(device),
                                      "generation_config": hf_gen, "logits_processor": processors}
            if pac:
                kwargs["pac_spans"] = torch.tensor([e[1] for e in encoded], dtype=torch.long)
            output = model.generate(**kwargs)
            texts = [decode_complete(tokenizer, row) for row in output[:, ids.shape[1]:]]
            if pac:
                gate_a, gate_b = _layer_mean_gates(model, len(batch))
            else:
                gate_a = gate_b = np.zeros((len(batch), 0))
            finished = [reply_row(r, t.strip(), a, b) for r, t, a, b in zip(batch, texts, gate_a, gate_b)]
            if out_path is not None:
                from .io import append_jsonl

                append_jsonl(out_path, finished)
            new.update({reply_key(r): row for r, row in zip(batch, finished)})
            bar.update(len(batch))
    bar.close()
    result = [{**done, **new}[reply_key(r)] for r in rows]
    return pd.DataFrame(result, columns=list(REPLY_COLUMNS))


def _checked_non_pac_mode(model: nn.Module, mode: str | None) -> str | None:
    if mode not in (None, "learned"):
        raise ValueError(f"gate_mode={mode!r} needs a PAC-LoRA model, got {type(model).__name__} without PAC-LoRA layers")
    return None


_gate_mode_ctx = gate_mode


@torch.no_grad()
def compute_gates(model: Any, tokenizer: Any, records: Any, batch_size: int = 16, progress: bool = True,
                  chat_config: ChatConfig | None = None, gate_mode: str | None = None) -> pd.DataFrame:
    """Gate weights of a PAC-LoRA model for each record's prompt, from one prefill (no generation): cheap enough
    to map the gates of a whole split for the interpretability heatmaps.

    Returns:
        ``DataFrame`` with ``case_id, topic_id, user_id, category, split, variant, gate_a, gate_b`` (lists of
        ``n_experts`` floats averaged over layers; each sums to 1), in input order.
    """
    from tqdm.auto import tqdm

    if not is_pac_model(model):
        raise ValueError(f"compute_gates needs a PAC-LoRA model, got {type(model).__name__}")
    chat = chat_config or model_chat_config(model)
    rows = as_records(records)
    check_records(rows)
    device = _model_device(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = []
    with _gate_mode_ctx(model, gate_mode):
        for batch in tqdm(list(batched(rows, batch_size)), desc="gates", disable=not progress):
            encoded = [prompt_ids_with_spans(tokenizer, r, chat) for r in batch]
            ids, mask = _left_pad([e[0] for e in encoded], pad_id)
            spans = torch.tensor([e[1] for e in encoded], dtype=torch.long)
            model(input_ids=ids.to(device), attention_mask=mask.to(device), pac_spans=spans, logits_to_keep=1)
            gate_a, gate_b = _layer_mean_gates(model, len(batch))
            for rec, a, b in zip(batch, gate_a, gate_b):
                out.append({k: rec.get(k) for k in ("case_id", "topic_id", "user_id", "category", "split", "variant")}
                           | {"gate_a": a.tolist(), "gate_b": b.tolist()})
    return pd.DataFrame(out)
