"""PAC-LoRA (n=3) / plain LoRA train step time, and the train step's model FLOP utilisation (MFU).

A step = forward with labels (loss on the response tokens), backward, AdamW step and zero_grad on the
adapter parameters, in train mode (dropout on), as `train.train_sft` runs it through the HF Trainer
minus the Trainer's bookkeeping. Same rank, alpha, dropout, targets and batch for both contenders.

MFU = 6 N tokens / step time / peak, with N the parameters every token multiplies (all linear
weights, LM head included, plus LoRA-sized adapters) and tokens the non-pad tokens of the batch;
peak = the best fp32 (CUDA: bf16) `torch.matmul` FLOP/s measured on this machine. 6N is the usual
full-training count; with a frozen base no weight gradients are computed, so the step really needs
about 4N per token: the notes give that utilisation too. Attention score FLOPs are not counted.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch
from torch import nn

from socialalign_lib.pac_lora import SPANS_KWARG

from .common import (
    BenchConfig,
    Result,
    interleave,
    paired_ratio,
    per_round_ratios,
    profile_ops,
    spread,
    timed,
)
from .workloads import linear_params, with_lora, with_pac_lora

STEP_TARGET = 1.3
MFU_AIM = 0.30


def make_train_step(
    model: nn.Module, batch: dict[str, torch.Tensor], use_spans: bool, lr: float = 1e-4
) -> Callable[[], float]:
    """One optimizer step of `model` on `batch`; returns the loss. Spans are passed only to PAC-LoRA."""
    inputs = {name: value for name, value in batch.items() if name != SPANS_KWARG}
    if use_spans:
        inputs[SPANS_KWARG] = batch[SPANS_KWARG]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    model.train()

    def step() -> float:
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def shape_bound_flops(tokens: int, d: int, k: int, device: str, dtype: torch.dtype, rounds: int = 5) -> float:
    """FLOP/s of one `[tokens, d] @ [d, k]` product: what the machine gives at the model's own matmul shape."""
    x = torch.randn(tokens, d, device=device, dtype=dtype)
    w = torch.randn(d, k, device=device, dtype=dtype)
    values = interleave({"mm": timed(lambda: x @ w, device, repeats=3)}, rounds=rounds, warmup=1)
    return 2 * tokens * d * k / statistics.median(values["mm"])


def bench_train_step(
    cfg: BenchConfig,
    base: nn.Module,
    batch: dict[str, torch.Tensor],
    name: str,
    device: str,
    label: str,
    peak_flops: float,
    rounds: int,
    repeats: int,
    mfu_target: bool,
) -> list[Result]:
    """Interleaved PAC-LoRA and LoRA train steps on `base` (copied) and `batch`.

    Returns rows: the step time ratio (target <= 1.3), both medians in ms, and the PAC-LoRA step MFU.
    """
    pac = with_pac_lora(base, cfg)
    lora = with_lora(base, cfg)
    steps = {
        "pac": make_train_step(pac, batch, use_spans=True),
        "lora": make_train_step(lora, batch, use_spans=False),
    }
    values = interleave(
        {key: timed(fn, device, repeats) for key, fn in steps.items()}, rounds, warmup=cfg.warmup
    )
    ratio = paired_ratio(values, "pac", "lora")
    pac_s, lora_s = statistics.median(values["pac"]), statistics.median(values["lora"])
    tokens = int(batch["attention_mask"].sum())
    rows_, seq = batch["input_ids"].shape
    how = (
        f"batch {rows_}x{seq} ({tokens} tokens), n={cfg.n_experts} r={cfg.r}, 7 projections, AdamW; "
        f"median of {rounds} interleaved rounds x {repeats} steps, per-round ratios {spread(per_round_ratios(values, 'pac', 'lora'))}"  # noqa: E501
    )
    notes = how
    met = ratio <= STEP_TARGET
    if not met and cfg.profile:
        notes += (
            f". PROFILE pac: {profile_ops(steps['pac'], device).text()}"
            f". PROFILE lora: {profile_ops(steps['lora'], device).text()}"
        )
    results = [
        Result(
            "train_step",
            f"pac_over_lora_step_time[{name}]",
            ratio,
            "x",
            f"<= {STEP_TARGET}",
            met,
            label,
            notes,
        ),
        Result(
            "train_step", f"pac_step_ms[{name}]", pac_s * 1e3, "ms", device=label, notes="median per step"
        ),
        Result(
            "train_step", f"lora_step_ms[{name}]", lora_s * 1e3, "ms", device=label, notes="median per step"
        ),
    ]

    n_params = linear_params(lora)
    mfu = 6 * n_params * tokens / pac_s / peak_flops
    config = getattr(base, "config", None)
    notes = (
        f"6*N*tokens/time/peak, N={n_params / 1e6:.2f}M linear params (LM head + LoRA-sized adapter), "
        f"{tokens} tokens, PAC-LoRA step {pac_s * 1e3:.0f} ms, peak {peak_flops / 1e9:.0f} GFLOP/s; "
        f"frozen base (4N): {mfu * 4 / 6:.1%}"
    )
    met_mfu = (mfu >= MFU_AIM) if mfu_target else None
    if mfu_target and not met_mfu and cfg.profile and config is not None:
        d, k = config.hidden_size, config.intermediate_size
        dtype = next(base.parameters()).dtype
        bound = shape_bound_flops(rows_ * seq, d, k, device, dtype)
        notes += (
            f". BOUND: the model's largest matmul [{rows_ * seq}x{d}]@[{d}x{k}] alone reaches "
            f"{bound / 1e9:.0f} GFLOP/s = {bound / peak_flops:.0%} of peak; "
            f"PROFILE pac: {profile_ops(steps['pac'], device).text()}"
        )
    results.append(
        Result(
            "mfu",
            f"train_step_mfu[{name}]",
            100 * mfu,
            "%",
            f">= {MFU_AIM:.0%} (aim)" if mfu_target else "",
            met_mfu,
            label,
            notes,
        )
    )
    del pac, lora, steps
    return results
