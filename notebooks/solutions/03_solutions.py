"""Solutions to the exercises of notebook 03 (PAC-LoRA). Cheap: untrained adapters, no training."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from socialalign_lib.build.pipeline import course_data
from socialalign_lib.generate.decode import compute_gates
from socialalign_lib.train.config import socialllm_config
from socialalign_lib.train.socialllm import untrained_socialllm

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _untrained(method: str, size: str, seed: int, **over):
    cfg = replace(socialllm_config(method, size, seed=seed), device="cpu", **over)
    return untrained_socialllm(cfg)


def predicted_adapter_parameters(
    base_linears: list[tuple[int, int]], method: str, n: int = 3, r: int = 8, gate_hidden: int = 32
) -> int:
    """Exercise 1 (implement): the adapter's trainable parameters from the adapted projections' (d_in, d_out).
    LoRA: A (r x d_in) + B (d_out x r). PAC-LoRA: n of each, plus two gate MLPs per projection that read the
    layer input, d_in -> gate_hidden -> n, without bias."""
    total = 0
    for d_in, d_out in base_linears:
        if method == "lora":
            total += r * (d_in + d_out)
        else:
            total += n * r * (d_in + d_out) + 2 * (d_in * gate_hidden + gate_hidden * n)
    return total


def ex1_parameter_count(size: str = "tiny", seed: int = 0) -> dict[str, dict[str, int]]:
    """Exercise 1 (predict, then implement): how many adapter parameters do LoRA, PAC-LoRA with n=1 and with n=3
    have? Predicted from the formula vs counted on the model. (n=1 is LoRA plus its gates: the gates dominate on
    the small course model, whose projections are 128 wide; on a 7B model they are a small share.)"""
    out = {}
    for name, method, n in (
        ("LoRA", "lora", 1),
        ("PAC-LoRA n=1", "pac_lora", 1),
        ("PAC-LoRA n=3", "pac_lora", 3),
    ):
        run = _untrained(method, size, seed, n_experts=n)
        base = run.model.get_base_model()
        linears = [
            (m.in_features, m.out_features)
            for name_, m in base.named_modules()
            if name_.split(".")[-1] in TARGETS and hasattr(m, "in_features")
        ]
        out[name] = {
            "counted": run.adapter_parameters(),
            "predicted": predicted_adapter_parameters(linears, method, n=n),
        }
    return out


def gate_entropy(gates: np.ndarray) -> np.ndarray:
    """Exercise 2 (implement): a new gate statistic, the entropy in bits of each record's gate vector
    (0: one expert takes everything; log2 n: uniform)."""
    g = np.clip(np.asarray(gates, dtype=float), 1e-12, 1.0)
    return -(g * np.log2(g)).sum(axis=1)


def ex2_gate_entropy(size: str = "tiny", seed: int = 0, n_records: int = 32) -> dict[str, float]:
    """Exercise 2: mean gate entropy (bits) of the untrained PAC-LoRA on held-out records, for gate A (news) and
    gate B (user), and with ``gate_mode="uniform"`` (must be exactly log2 3 = 1.585). In notebook 03, run it on
    ``runs["PAC-LoRA"].model`` and compare per category: a trained gate that routes has lower entropy than the
    untrained one, which is already close to uniform (its gate MLPs start small)."""
    data = course_data(size=size, seed=seed)
    run = _untrained("pac_lora", size, seed)
    records = data.split("test_topic").select(range(n_records))
    out = {}
    for mode in (None, "uniform"):
        gates = compute_gates(run.model, run.tokenizer, records, progress=False, gate_mode=mode)
        for side in ("gate_a", "gate_b"):
            out[f"{side} entropy ({mode or 'learned'})"] = float(gate_entropy(np.stack(gates[side])).mean())
    out["log2 n"] = float(np.log2(run.config.n_experts))
    return out


def token_gates(hidden: torch.Tensor, gate_in: torch.nn.Linear, gate_out: torch.nn.Linear) -> torch.Tensor:
    """Exercise 3 (implement): the official per-token gate: softmax(W2 gelu(W1 x)) for every token's own state
    (rows of ``hidden``) instead of the span's mean."""
    return torch.softmax(gate_out(torch.nn.functional.gelu(gate_in(hidden))), dim=-1)


def ex3_token_vs_mean_gate(size: str = "tiny", seed: int = 0) -> dict[str, float]:
    """Exercise 3: on random states, the gate of the mean (ours) against the mean of the per-token gates (the
    official routing averaged over the span). They differ (the gate is not linear), and each sums to 1."""
    torch.manual_seed(seed)
    gate_in, gate_out = torch.nn.Linear(128, 32, bias=False), torch.nn.Linear(32, 3, bias=False)
    torch.nn.init.normal_(gate_out.weight, std=1.0)  # a trained gate is sharper than the initial one
    hidden = torch.randn(20, 128)
    with torch.no_grad():
        per_token = token_gates(hidden, gate_in, gate_out)
        of_mean = token_gates(hidden.mean(0, keepdim=True), gate_in, gate_out)[0]
    return {
        "max |mean of token gates - gate of mean|": float((per_token.mean(0) - of_mean).abs().max()),
        "token gate rows sum to 1 (max error)": float((per_token.sum(1) - 1).abs().max()),
    }
