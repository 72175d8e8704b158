"""What to train: :class:`SocialLLMConfig` (method, base model, adapter knobs, Trainer knobs) and the course's
configs per world size.

Three methods are trained and evaluated the same way:

* ``"pac_lora"`` — SocialAlign's model: PAC-LoRA experts on every projection, gate A from the news span, gate B
  from the user span (:mod:`socialalign_lib.pac_lora`);
* ``"lora"`` — the plain-LoRA baseline (peft ``LoraConfig``, same ``r``, alpha, dropout and targets);
* ``"base"`` — the zero-shot base model: same prompt through the chat template, no adapter, nothing trained.

The config's plain fields are its serialisation: :meth:`SocialLLMConfig.to_dict` and
:meth:`SocialLLMConfig.config_hash` name every run folder and the committed adapters in ``data/checkpoints``. So
the adapter's knobs stay flat fields here and :meth:`SocialLLMConfig.peft_config` builds the ``PacLoraConfig``
(or ``LoraConfig``) from them, rather than the config holding one (that would change the dict and every hash).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from peft import LoraConfig
from torch import nn

from socialalign_lib import paths
from socialalign_lib.build.records.chat import ChatConfig, resolve_spans
from socialalign_lib.build.records.template import VARIANTS
from socialalign_lib.pac_lora import DEFAULT_TARGET_MODULES, PacLoraConfig, is_pac_model, pac_tuner

from .run_folder import sha256_json
from .sft import SFTConfig

__all__ = [
    "METHODS",
    "OFFICIAL_LORA_LR",
    "SIZE_STEPS",
    "SocialLLMConfig",
    "course_sft_config",
    "model_chat_config",
    "socialllm_config",
]

METHODS: tuple[str, ...] = ("base", "lora", "pac_lora")
# SFTConfig fields that do not change the trained weights (left out of the run hash).
_SFT_BOOKKEEPING = frozenset(
    {
        "output_dir",
        "resume",
        "logging_steps",
        "save_steps",
        "save_total_limit",
        "dataloader_num_workers",
        "per_device_eval_batch_size",
        "eval_strategy",
        "eval_steps",
    }
)


def course_sft_config(**overrides: Any) -> SFTConfig:
    """Training knobs for the embedded model on the ``course`` world: 300 steps of 8 records (~2 epochs of the
    1,119 training records) at learning rate 1e-3, a few minutes per model on one CPU thread. Chosen on the
    validation split's learning curve (notebook 03; the measurements behind the choice are in docs/design.md,
    "The embedded model and the committed adapters"): the reply loss flattens by ~300 steps, and a faster rate
    memorises the 48 training topics. A ~1M-parameter model still needs a rate ~50x the paper's 2e-5."""
    base = dict(
        max_steps=300,
        learning_rate=1e-3,
        per_device_train_batch_size=8,
        warmup_ratio=0.1,
        logging_steps=10,
        save_steps=100,
        save_total_limit=1,
    )
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
        sft: Trainer knobs (:class:`~socialalign_lib.train.sft.SFTConfig`); ``SFTConfig.official()`` for the paper's.
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
            raise ValueError(
                f"SocialLLMConfig.dtype must name a torch dtype (e.g. 'bfloat16'), got {self.dtype!r}"
            )

    @property
    def targets(self) -> list[str]:
        return list(self.target_modules or DEFAULT_TARGET_MODULES)

    def peft_config(self) -> Any:
        """The adapter's peft config: ``PacLoraConfig`` or ``LoraConfig`` (None for the base model)."""
        if self.method == "pac_lora":
            return PacLoraConfig(
                n_experts=self.n_experts,
                r=self.r,
                lora_alpha=self.alpha,
                lora_dropout=self.dropout,
                target_modules=self.targets,
                gate_hidden=self.gate_hidden,
                routing=self.routing,
                spans=self.spans,
            )
        if self.method == "lora":
            return LoraConfig(
                r=self.r,
                lora_alpha=self.alpha,
                lora_dropout=self.dropout,
                target_modules=self.targets,
                bias="none",
                task_type="CAUSAL_LM",
            )
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
        for key, default in (
            ("spans", "auto"),
            ("dtype", None),
        ):  # runs from before these options keep their hash
            if data[key] == default:
                data.pop(key)
        data["sft"] = {k: v for k, v in data["sft"].items() if k not in _SFT_BOOKKEEPING}
        if self.method == "base":  # nothing is trained: only the model identifies the run
            data = {
                "method": "base",
                "base_model": paths.portable(self.base_model),
                "load_in_4bit": self.load_in_4bit,
            }
        return sha256_json(data)


#: Optimizer steps (batch 8) per world size for :func:`socialllm_config`: ~3 minutes per model at "course" on CPU;
#: "large" keeps the course budget (set ``max_steps`` for a real large run). ``experiments.sft_for_size``
#: (notebooks 05-06) builds the same training config, so every notebook finds the same run folder.
SIZE_STEPS: dict[str, int] = {"tiny": 8, "course": 300, "large": 300}
#: The official plain-LoRA baseline's learning rate (PAC-LoRA: 2e-5), used with ``official_hparams=True``.
OFFICIAL_LORA_LR = 5e-6


def socialllm_config(
    method: str,
    size: str = "course",
    seed: int = 0,
    official_hparams: bool = False,
    max_steps: int | None = None,
    **overrides: Any,
) -> SocialLLMConfig:
    """The course's config for ``method`` at a world ``size``: what notebooks 03-06 build, so they find the same
    run folder (``run_folder.default_output_dir``) and train each model once.

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


def model_chat_config(model: nn.Module) -> ChatConfig:
    """The prompt config a model was trained with, read from the model: a PAC-LoRA adapter's span scheme
    (``PacLoraConfig.spans``, saved with the adapter), the record's spans otherwise."""
    if not is_pac_model(model):
        return ChatConfig()
    try:
        configs = pac_tuner(model).peft_config
    except TypeError:  # PAC-LoRA layers without a PacLoraModel around them
        return ChatConfig()
    config = configs.get("default") or next(iter(configs.values()))
    return ChatConfig(spans=config.span_scheme)
