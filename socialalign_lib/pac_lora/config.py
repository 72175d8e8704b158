"""PAC-LoRA configuration: every knob of the method, documented once.

The dataclass is a real `peft.PeftConfig`, so it is written to `adapter_config.json` by
`save_pretrained` and read back by `PeftModel.from_pretrained` (the `PAC_LORA` PEFT type is
registered when `socialalign_lib.pac_lora` is imported, see `model.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from peft.config import PeftConfig
from peft.utils.peft_types import PeftType, TaskType

#: Name of the PEFT type in `adapter_config.json` and in `peft.utils.PeftType`.
PAC_LORA_PEFT_TYPE = "PAC_LORA"

Routing = Literal["sequence", "token"]
GateMode = Literal["learned", "uniform_a", "uniform_b", "uniform"]

ROUTINGS: tuple[str, ...] = ("sequence", "token")
#: Token span schemes (the same names as `records.SPAN_SCHEMES`; repeated here so the adapter config stays light).
SPAN_SCHEMES: tuple[str, ...] = ("record", "official")
GATE_MODES: tuple[str, ...] = ("learned", "uniform_a", "uniform_b", "uniform")
#: The seven projections SocialAlign adapts in every decoder layer (Qwen2 / Llama / Mistral names).
DEFAULT_TARGET_MODULES: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)


def ensure_pac_lora_peft_type() -> PeftType:
    """Add `PAC_LORA` to peft's closed `PeftType` enum (idempotent) and return the member.

    Why: `peft.utils.register_peft_method` refuses names that are not enum members, and
    transformers' `load_adapter` reads `config.peft_type.value`, so a plain string breaks it.
    This touches enum internals (`_member_map_`, `_value2member_map_`, `_member_names_`), stable
    on CPython 3.10-3.12; `tests/test_pac_lora.py` trips if that changes.
    """
    name = PAC_LORA_PEFT_TYPE
    if name in PeftType._member_map_:
        return PeftType[name]
    member = str.__new__(PeftType, name)
    member._name_ = name
    member._value_ = name
    member.__objclass__ = PeftType
    member._sort_order_ = len(PeftType._member_names_)
    type.__setattr__(PeftType, name, member)
    PeftType._member_map_[name] = member
    PeftType._value2member_map_[name] = member
    PeftType._member_names_.append(name)
    return member


@dataclass
class PacLoraConfig(PeftConfig):
    """Configuration of PAC-LoRA (Personalized Analyze-Compose LoRA, SocialAlign ACM MM 2025).

    Each adapted linear layer `W` (`d` inputs, `k` outputs) computes, for a sequence with user
    span U and news span N:

        h = W x + (lora_alpha / r) * sum_j gB_j B_j (sum_i gA_i A_i dropout(x))

    with `n_experts` analyzing experts `A_i` (`[r, d]`) and writing experts `B_j` (`[k, r]`),
    `gA = softmax(W2 gelu(W1 pool(x, N)))` and `gB = softmax(W2' gelu(W1' pool(x, U)))`
    (`W1: d -> gate_hidden`, `W2: gate_hidden -> n_experts`, no bias).

    Args:
        n_experts: experts per side (`n`); the official code hard-codes 3. With `n=1` the layer is
            exactly peft's LoRA (the gates are then the constant 1).
        r: rank of every expert.
        lora_alpha: scale numerator; the delta is multiplied by `lora_alpha / r` (2 by default),
            not by `lora_alpha / (n * r)`: each expert mixture is a convex combination.
        lora_dropout: dropout on `x` before the experts (the gates pool the *pre-dropout* `x` in
            `routing="sequence"`; with `routing="token"` they read the dropped-out `x` as the
            official code does).
        target_modules: module names (or a regex) to adapt; default the 7 projections.
        gate_hidden: hidden width of each gate MLP (32 in the official code).
        routing: `"sequence"` (ours, default): one gate vector per sequence from the masked mean of
            the layer input over each span, computed at prefill and cached for decoding, applied
            to every token (response included). `"token"`: the official per-token routing, each
            token gated from its own hidden state zeroed outside the span, so tokens outside both
            spans (the response in training) get uniform gates; at a cached decode step, as in the
            official code, the new token is taken for a user token (gate B from the token itself,
            gate A uniform). Slower; the official method.
        spans: which token spans the adapter is trained and run with (`records.ChatConfig.spans`);
            the layers do not read it, the SocialLLM helpers do, and it is saved with the adapter.
            `"auto"` (default): `"official"` with token routing (gate A: the news block up to and
            including "…#hashtag# 登上了微博热搜"; gate B: every token before it, system prompt and
            chat-template tokens included), `"record"` with sequence routing (gate A: the news text
            alone; gate B: user name, history and persona).
        gate_mode: `"learned"`, or an ablation that replaces a gate by the uniform `1/n`:
            `"uniform_a"` (analyzing/news gate), `"uniform_b"` (writing/user gate), `"uniform"`
            (both). A uniform side has no gate parameters (nothing unused for DDP).
        init_weights: `True`: B = 0 so the adapted model starts equal to the base model (LoRA's
            convention). `False`: B is random like A (tests and debugging: then A and the gates
            get gradients from the first step).
        exclude_modules, layers_to_transform, layers_pattern, modules_to_save, target_parameters:
            peft's usual module-selection knobs (needed by peft's injection code).
    """

    n_experts: int = field(default=3, metadata={"help": "Number of analyzing and of writing experts."})
    r: int = field(default=8, metadata={"help": "Rank of each expert."})
    lora_alpha: float = field(default=16, metadata={"help": "Scale numerator: delta * lora_alpha / r."})
    lora_dropout: float = field(default=0.1, metadata={"help": "Dropout on x before the experts."})
    target_modules: list[str] | str | None = field(
        default_factory=lambda: list(DEFAULT_TARGET_MODULES),
        metadata={"help": "Module names or a regex of the modules to adapt."},
    )
    gate_hidden: int = field(default=32, metadata={"help": "Hidden width of the gate MLPs."})
    routing: str = field(default="sequence", metadata={"help": "'sequence' (ours) or 'token' (official)."})
    spans: str = field(
        default="auto", metadata={"help": "'auto', 'record' (ours) or 'official' token spans."}
    )
    gate_mode: str = field(
        default="learned", metadata={"help": "'learned', 'uniform_a', 'uniform_b' or 'uniform' (ablations)."}
    )
    init_weights: bool = field(default=True, metadata={"help": "B = 0 at init (True) or random (False)."})
    exclude_modules: list[str] | str | None = field(default=None, metadata={"help": "Modules not to adapt."})
    layers_to_transform: list[int] | int | None = field(default=None, metadata={"help": "Layer indices."})
    layers_pattern: list[str] | str | None = field(default=None, metadata={"help": "Layer container name."})
    modules_to_save: list[str] | None = field(default=None, metadata={"help": "Extra trainable modules."})
    target_parameters: list[str] | None = field(default=None, metadata={"help": "Unsupported; keep None."})

    def __post_init__(self) -> None:
        ensure_pac_lora_peft_type()
        super().__post_init__()
        self.peft_type = PeftType(PAC_LORA_PEFT_TYPE)
        if self.task_type is None:
            self.task_type = TaskType.CAUSAL_LM
        if isinstance(self.target_modules, (list, tuple)):
            self.target_modules = set(self.target_modules)
        if self.n_experts < 1 or self.r < 1 or self.gate_hidden < 1:
            raise ValueError(
                f"PacLoraConfig: n_experts, r and gate_hidden must be >= 1, got "
                f"n_experts={self.n_experts}, r={self.r}, gate_hidden={self.gate_hidden}"
            )
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"PacLoraConfig: lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.routing not in ROUTINGS:
            raise ValueError(f"PacLoraConfig: routing must be one of {ROUTINGS}, got {self.routing!r}")
        if self.spans not in ("auto", *SPAN_SCHEMES):
            raise ValueError(
                f"PacLoraConfig: spans must be 'auto' or one of {SPAN_SCHEMES}, got {self.spans!r}"
            )
        if self.gate_mode not in GATE_MODES:
            raise ValueError(f"PacLoraConfig: gate_mode must be one of {GATE_MODES}, got {self.gate_mode!r}")
        if self.target_parameters:
            raise ValueError(
                "PacLoraConfig: target_parameters is not supported (PAC-LoRA wraps Linear modules)"
            )

    @property
    def span_scheme(self) -> str:
        """`spans` with `"auto"` resolved: `"official"` for token routing, `"record"` for sequence routing."""
        if self.spans == "auto":
            return "official" if self.routing == "token" else "record"
        return self.spans

    @property
    def scaling(self) -> float:
        """`lora_alpha / r`, the factor on the adapter delta (2.0 with the official r=8, alpha=16)."""
        return self.lora_alpha / self.r
