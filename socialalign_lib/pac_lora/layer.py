"""The PAC-LoRA math on one linear layer (`nn.Linear`, and bitsandbytes `Linear4bit`/`Linear8bitLt`).

Parameter layout (per adapter name, peft's `<attr>.<adapter>.weight` depth so that saved keys
lose the adapter name and load under any other name):

    pac_A[adapter]            Linear(d, n*r)   the n analyzing experts stacked, expert i = rows i*r:(i+1)*r
    pac_B[adapter]            Linear(n*r, k)   the n writing experts stacked, expert j = cols j*r:(j+1)*r
    pac_gate_A_in/out         Linear(d, h) -> GELU -> Linear(h, n), no bias: gate A (reads the news span)
    pac_gate_B_in/out         the same for gate B (reads the user span)

With `n=1` this is exactly peft's LoRA layout (`lora_A: Linear(d, r)`, `lora_B: Linear(r, k)`),
and the gates are the constant softmax of one logit = 1.0, so the outputs are LoRA's: bit for bit with
token routing (the same two matmuls as peft), equal to fp32 rounding with sequence routing (the folded
batched matmul sums in another order: ~1e-5 on a tiny model's logits).

Sequence routing (default) folds the experts per sequence,
`A_eff[b] = sum_i gA[b, i] A_i` and `B_eff[b] = sum_j gB[b, j] B_j`, stored transposed as
`[batch, d, r]` and `[batch, r, k]`, and runs two batched matmuls: the cost of LoRA plus an
`n*r*(d+k)` fold per sequence (measured 1.05x a peft LoRA train step, ~1.08x its decode speed on a
tiny Qwen2). The folded matrices are cached at prefill and reused at every decode step, and the
second matmul is fused with the residual add (`baddbmm`).

Because a gate pools its whole span, every token of a layer sees the span mean through the gate,
including tokens *before* the span ends: within the prompt the model is no longer strictly causal.
The response lies after both spans, so keep the loss on response tokens only (labels -100 on the
prompt, as the official training does), or prompt tokens would leak their successors.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from .config import GATE_MODES, PacLoraConfig
from .spans import NEWS, USER, PacSpanError, SpanRouter


class PacLoraMergeError(ValueError):
    """PAC-LoRA cannot be merged into the base weights: its delta depends on the input's spans."""


MERGE_MESSAGE = (
    "PAC-LoRA cannot be merged into the base weights: its delta W depends on the gates, which depend on "
    "each input's user and news spans. Keep the adapter unmerged (or unload() to drop it)."
)


@dataclass
class GateCache:
    """Gates of the latest prefill of one layer and adapter.

    Attributes:
        prefill_id: `SpanRouter.prefill_count` of the prefill that produced them.
        gate_a, gate_b: `[batch, n]` (sequence routing) or `[batch, seq, n]` (token routing), detached.
        a_t: `[batch, d, r]` folded analyzing expert, transposed, for decode steps (token routing: empty, as
            each decoded token is gated from itself).
        b_t: `[batch, r, k]` folded writing expert, transposed, for decode steps (token routing: empty).
    """

    prefill_id: int
    gate_a: torch.Tensor
    gate_b: torch.Tensor
    a_t: torch.Tensor
    b_t: torch.Tensor


class PacLoraLayer(BaseTunerLayer):
    """Adapter state and math shared by every PAC-LoRA wrapped linear layer."""

    adapter_layer_names: tuple[str, ...] = (
        "pac_A",
        "pac_B",
        "pac_gate_A_in",
        "pac_gate_A_out",
        "pac_gate_B_in",
        "pac_gate_B_out",
    )
    other_param_names: tuple[str, ...] = ("pac_dropout", "n_experts", "r", "scaling", "routing", "gate_mode")

    def __init__(self, base_layer: nn.Module, router: SpanRouter) -> None:
        self.base_layer = base_layer
        self.pac_A = nn.ModuleDict({})
        self.pac_B = nn.ModuleDict({})
        self.pac_gate_A_in = nn.ModuleDict({})
        self.pac_gate_A_out = nn.ModuleDict({})
        self.pac_gate_B_in = nn.ModuleDict({})
        self.pac_gate_B_out = nn.ModuleDict({})
        self.pac_dropout = nn.ModuleDict({})
        self.n_experts: dict[str, int] = {}
        self.r: dict[str, int] = {}
        self.scaling: dict[str, float] = {}
        self.routing: dict[str, str] = {}
        self.gate_mode: dict[str, str] = {}
        self._disable_adapters = False
        self.merged_adapters: list[str] = []
        self._router = router
        self._gate_cache: dict[str, GateCache] = {}
        base = self.get_base_layer()
        if not isinstance(base, nn.Linear):
            raise TypeError(
                f"PAC-LoRA wraps nn.Linear (and bitsandbytes Linear4bit/8bit), got {type(base).__name__}"
            )
        self.in_features: int = base.in_features
        self.out_features: int = base.out_features

    def update_layer(self, adapter_name: str, config: PacLoraConfig, inference_mode: bool = False) -> None:
        """Create the experts, gates and dropout of `adapter_name` on this layer."""
        n, r, d, k, h = config.n_experts, config.r, self.in_features, self.out_features, config.gate_hidden
        self.n_experts[adapter_name] = n
        self.r[adapter_name] = r
        self.scaling[adapter_name] = config.lora_alpha / r
        self.routing[adapter_name] = config.routing
        self.gate_mode[adapter_name] = config.gate_mode
        self.pac_A[adapter_name] = nn.Linear(d, n * r, bias=False)
        self.pac_B[adapter_name] = nn.Linear(n * r, k, bias=False)
        if config.gate_mode in ("learned", "uniform_b"):
            self.pac_gate_A_in[adapter_name] = nn.Linear(d, h, bias=False)
            self.pac_gate_A_out[adapter_name] = nn.Linear(h, n, bias=False)
        if config.gate_mode in ("learned", "uniform_a"):
            self.pac_gate_B_in[adapter_name] = nn.Linear(d, h, bias=False)
            self.pac_gate_B_out[adapter_name] = nn.Linear(h, n, bias=False)
        self.pac_dropout[adapter_name] = (
            nn.Dropout(config.lora_dropout) if config.lora_dropout > 0 else nn.Identity()
        )
        self.reset_pac_parameters(adapter_name, config.init_weights)
        self._move_adapter_to_device_of_base_layer(adapter_name)
        self.set_adapter(self.active_adapters, inference_mode=inference_mode)

    def reset_pac_parameters(self, adapter_name: str, init_weights: bool = True) -> None:
        """A and gates: kaiming-uniform(a=sqrt(5)) as LoRA's A; B: zero (or random if not `init_weights`)."""
        for attr in ("pac_A", "pac_gate_A_in", "pac_gate_A_out", "pac_gate_B_in", "pac_gate_B_out"):
            container = getattr(self, attr)
            if adapter_name in container:
                nn.init.kaiming_uniform_(container[adapter_name].weight, a=math.sqrt(5))
        if init_weights:
            nn.init.zeros_(self.pac_B[adapter_name].weight)
        else:
            nn.init.kaiming_uniform_(self.pac_B[adapter_name].weight, a=math.sqrt(5))

    def set_gate_mode(self, adapter_name: str, gate_mode: str) -> None:
        """Switch an adapter's gates at run time (inference ablation of a trained adapter)."""
        if gate_mode not in GATE_MODES:
            raise ValueError(f"gate_mode must be one of {GATE_MODES}, got {gate_mode!r}")
        needs_a = gate_mode in ("learned", "uniform_b")
        needs_b = gate_mode in ("learned", "uniform_a")
        if (needs_a and adapter_name not in self.pac_gate_A_in) or (
            needs_b and adapter_name not in self.pac_gate_B_in
        ):
            raise ValueError(
                f"adapter {adapter_name!r} was built without the gates that gate_mode={gate_mode!r} needs"
            )
        self.gate_mode[adapter_name] = gate_mode

    # ---- gates ---------------------------------------------------------------------------------

    def gate(self, adapter_name: str, side: str, x: torch.Tensor) -> torch.Tensor:
        """Gate weights `[..., n]` from inputs `[..., d]` (`side` "A": news gate, "B": user gate).

        Uniform `1/n` when the side is ablated; the learned gate is never skipped otherwise (not
        even for n=1), so every gate parameter gets a gradient and DDP needs no unused-parameter scan.
        """
        n = self.n_experts[adapter_name]
        mode = self.gate_mode[adapter_name]
        if (
            mode == "uniform"
            or (side == "A" and mode == "uniform_a")
            or (side == "B" and mode == "uniform_b")
        ):
            return x.new_full((*x.shape[:-1], n), 1.0 / n)
        gate_in = getattr(self, f"pac_gate_{side}_in")[adapter_name]
        gate_out = getattr(self, f"pac_gate_{side}_out")[adapter_name]
        return torch.softmax(gate_out(F.gelu(gate_in(x))), dim=-1)

    def last_gates(self, adapter_name: str) -> GateCache | None:
        """Gates of this layer's latest prefill for `adapter_name` (None before any)."""
        return self._gate_cache.get(adapter_name)

    # ---- forward -------------------------------------------------------------------------------

    def fold_experts(
        self, adapter_name: str, gate_a: torch.Tensor, gate_b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sequence expert mixtures, laid out for `x @ A_eff^T @ B_eff^T` as batched matmuls.

        Args:
            gate_a, gate_b: `[batch, n]`.
        Returns:
            `A_eff^T = sum_i gate_a[:, i] A_i^T` as `[batch, d, r]` and `B_eff^T` as `[batch, r, k]`,
            both contiguous (decode steps with one token per row are then plain small GEMMs).
        """
        n, r = self.n_experts[adapter_name], self.r[adapter_name]
        weight_a = self.pac_A[adapter_name].weight  # [n*r, d]
        weight_b = self.pac_B[adapter_name].weight  # [k, n*r]
        batch, d, k = gate_a.shape[0], weight_a.shape[1], weight_b.shape[0]
        a_t = gate_a @ weight_a.reshape(n, r, d).transpose(1, 2).reshape(n, d * r)
        b_t = gate_b @ weight_b.reshape(k, n, r).permute(1, 2, 0).reshape(n, r * k)
        return a_t.reshape(batch, d, r), b_t.reshape(batch, r, k)

    def _sequence_delta(
        self, adapter_name: str, x: torch.Tensor, x_drop: torch.Tensor, result: torch.Tensor
    ) -> torch.Tensor:
        batch, seq, _ = x.shape
        router = self._router
        if router.is_prefill:
            routing = router.prefill_routing(batch, seq)
            pooled = torch.bmm(routing.pool_weights(x.device, x.dtype), x)  # [batch, 2, d], pre-dropout x
            gate_a = self.gate(adapter_name, "A", pooled[:, NEWS])
            gate_b = self.gate(adapter_name, "B", pooled[:, USER])
            a_t, b_t = self.fold_experts(adapter_name, gate_a, gate_b)
            self._gate_cache[adapter_name] = GateCache(
                router.prefill_count, gate_a.detach(), gate_b.detach(), a_t.detach(), b_t.detach()
            )
        else:
            cached = self._cached_for_decode(adapter_name, batch)
            a_t, b_t = cached.a_t, cached.b_t
        return self._add_folded(x_drop, a_t, b_t, self.scaling[adapter_name], result)

    @staticmethod
    def _add_folded(
        x_drop: torch.Tensor, a_t: torch.Tensor, b_t: torch.Tensor, scaling: float, result: torch.Tensor
    ) -> torch.Tensor:
        """`result + scaling * x_drop @ A_eff^T @ B_eff^T`, the add fused into the matmul when dtypes allow."""
        hidden = torch.bmm(x_drop, a_t)  # [batch, seq, r]
        if result.dtype == hidden.dtype and result.shape == (*hidden.shape[:2], b_t.shape[-1]):
            return torch.baddbmm(result, hidden, b_t, alpha=scaling)
        return result + torch.bmm(hidden, b_t) * scaling

    def _token_delta(self, adapter_name: str, x_drop: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
        """Official per-token routing: each token gated from its own (dropped-out) state, zeroed outside the span.

        At prefill, gate A reads the news-span tokens and gate B the user-span tokens; every other token (the
        chat template's assistant header, the response in training) is zero for both, so both its gates are
        uniform. At a KV-cached decode step the official code compares the new token's index in its one-token
        input (0) with the user span's end, so it takes every new token for a *user* token: gate B is computed
        from the token itself and gate A stays uniform. That is the rule here too (a train/decode mismatch of
        the official method, kept on purpose; ``routing="sequence"`` has none).
        """
        batch, seq, _ = x_drop.shape
        n = self.n_experts[adapter_name]
        router = self._router
        if not router.is_prefill:
            gate_a = x_drop.new_full(
                (batch, seq, n), 1.0 / n
            )  # softmax of a bias-free gate on a zeroed input
            gate_b = self.gate(adapter_name, "B", x_drop)
            return self._token_mix(adapter_name, x_drop, gate_a, gate_b, result)
        masks = router.prefill_routing(batch, seq).token_masks(x_drop.device, x_drop.dtype)
        gate_a = self.gate(adapter_name, "A", x_drop * masks[:, NEWS, :, None])  # [batch, seq, n]
        gate_b = self.gate(adapter_name, "B", x_drop * masks[:, USER, :, None])
        empty = x_drop.new_zeros((batch, 0, 0))
        self._gate_cache[adapter_name] = GateCache(
            router.prefill_count, gate_a.detach(), gate_b.detach(), empty, empty
        )
        return self._token_mix(adapter_name, x_drop, gate_a, gate_b, result)

    def _token_mix(
        self,
        adapter_name: str,
        x_drop: torch.Tensor,
        gate_a: torch.Tensor,
        gate_b: torch.Tensor,
        result: torch.Tensor,
    ) -> torch.Tensor:
        """`result + scaling * sum_j gB_j B_j(sum_i gA_i A_i x)` with per-token gates `[batch, seq, n]`."""
        batch, seq, _ = x_drop.shape
        n, r = self.n_experts[adapter_name], self.r[adapter_name]
        experts_a = self.pac_A[adapter_name](x_drop).reshape(batch, seq, n, r)
        hidden = torch.einsum("bsn,bsnr->bsr", gate_a, experts_a)
        mixed = (gate_b.unsqueeze(-1) * hidden.unsqueeze(-2)).reshape(batch, seq, n * r)
        return result + self.pac_B[adapter_name](mixed) * self.scaling[adapter_name]

    def _cached_for_decode(self, adapter_name: str, batch: int) -> GateCache:
        cached = self._gate_cache.get(adapter_name)
        if cached is None or cached.prefill_id != self._router.prefill_count:
            raise PacSpanError(
                "PAC-LoRA decode step without a routed prefill of this model (no cached gates)"
            )
        if cached.a_t.shape[0] != batch:
            raise PacSpanError(
                f"PAC-LoRA decode batch {batch} differs from the prefill batch {cached.a_t.shape[0]} "
                "whose gates are cached (beam/batch reordering across prompts is not supported)"
            )
        return cached

    def add_adapter_delta(self, adapter_name: str, x: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
        """`result + delta(x)` for `x: [batch, seq, d]` (adapter dtype) and `result: [batch, seq, k]`."""
        if x.dim() != 3:
            raise PacSpanError(f"PAC-LoRA layers need inputs [batch, seq, d], got shape {tuple(x.shape)}")
        x_drop = self.pac_dropout[adapter_name](x) if self.training else x
        if self.routing[adapter_name] == "sequence":
            return self._sequence_delta(adapter_name, x, x_drop, result)
        return self._token_delta(adapter_name, x_drop, result)

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        raise PacLoraMergeError(MERGE_MESSAGE)

    def unmerge(self) -> None:
        if self.merged_adapters:
            warnings.warn("PAC-LoRA adapters are never merged; nothing to unmerge", stacklevel=2)

    def get_delta_weight(self, adapter_name: str) -> torch.Tensor:
        raise PacLoraMergeError(MERGE_MESSAGE)

    def delete_adapter(self, adapter_name: str) -> None:
        self._gate_cache.pop(adapter_name, None)
        super().delete_adapter(adapter_name)


class Linear(nn.Module, PacLoraLayer):
    """PAC-LoRA around a linear layer: `base(x) + delta(x)`; x is cast to the adapter dtype and back.

    Works for `nn.Linear` and for bitsandbytes `Linear4bit` / `Linear8bitLt` (subclasses of
    `nn.Linear`), whose hidden states arrive in the compute dtype (e.g. bf16) while peft keeps the
    adapter in fp32.
    """

    def __init__(
        self, base_layer: nn.Module, adapter_name: str, config: PacLoraConfig, router: SpanRouter
    ) -> None:
        super().__init__()
        PacLoraLayer.__init__(self, base_layer, router)
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, config)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        result = self.base_layer(x, *args, **kwargs)
        if self.disable_adapters:
            return result
        result_dtype = result.dtype
        for adapter_name in self.active_adapters:
            if adapter_name not in self.pac_A:
                continue
            x_adapter = self._cast_input_dtype(x, self.pac_A[adapter_name].weight.dtype)
            result = self.add_adapter_delta(adapter_name, x_adapter, result)
        return result.to(result_dtype)

    def __repr__(self) -> str:
        return "pac_lora." + super().__repr__()
