"""PAC-LoRA / LoRA decode tokens per second, greedy, with KV cache (PAC-LoRA gates cached at prefill).

Decode speed is timed inside `generate` by a streamer that stamps each new token: the interval from
the first to the last generated token holds exactly `new_tokens - 1` cached decode steps, so the
prefill (which computes PAC-LoRA's gates once) is left out. `min_new_tokens = max_new_tokens` forces
the same length for both contenders.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from transformers.generation.streamers import BaseStreamer

from socialalign_lib.pac_lora import SPANS_KWARG

from .common import BenchConfig, Result, interleave, paired_ratio, per_round_ratios, profile_ops, spread
from .workloads import Prompt, prompt_batch, with_lora, with_pac_lora

DECODE_TARGET = 0.85


class TokenClock(BaseStreamer):
    """Streamer that records `time.perf_counter()` at every `put` (prompt first, then one per new token).

    `generate` moves each new token to the CPU before `put`, so on CUDA the stamp follows the step's sync.
    """

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def put(self, value: torch.Tensor) -> None:
        self.stamps.append(time.perf_counter())

    def end(self) -> None:
        pass


def decode_tokens_per_s(
    model: nn.Module, inputs: dict[str, torch.Tensor], new_tokens: int, use_spans: bool
) -> float:
    """Greedy cached decode rate (tokens/s summed over the batch) of one `generate` call."""
    if new_tokens < 3:
        raise ValueError(f"decode timing needs at least 3 new tokens, got {new_tokens}")
    kwargs = {name: value for name, value in inputs.items() if name != SPANS_KWARG}
    if use_spans:
        kwargs[SPANS_KWARG] = inputs[SPANS_KWARG]
    clock = TokenClock()
    with torch.no_grad():
        model.generate(
            **kwargs,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            use_cache=True,
            streamer=clock,
        )
    steps = len(clock.stamps) - 2
    return inputs["input_ids"].shape[0] * steps / (clock.stamps[-1] - clock.stamps[1])


def bench_decode(
    cfg: BenchConfig, base: nn.Module, prompts: list[Prompt], pad_id: int, name: str, device: str, label: str
) -> list[Result]:
    """Interleaved PAC-LoRA and LoRA decoding at each batch size of `cfg.decode_batches`.

    Returns per batch size: the tokens/s ratio PAC-LoRA / LoRA (target >= 0.85) and PAC-LoRA's tokens/s.
    """
    pac, lora = with_pac_lora(base, cfg).eval(), with_lora(base, cfg).eval()
    results = []
    for batch_size in cfg.decode_batches:
        inputs = prompt_batch(prompts[:batch_size], pad_id, device)
        runs = {
            "pac": lambda inputs=inputs: decode_tokens_per_s(
                pac, inputs, cfg.decode_new_tokens, use_spans=True
            ),
            "lora": lambda inputs=inputs: decode_tokens_per_s(
                lora, inputs, cfg.decode_new_tokens, use_spans=False
            ),
        }
        values = interleave(runs, cfg.decode_rounds, warmup=1)
        ratio = paired_ratio(values, "pac", "lora")
        notes = (
            f"greedy, {cfg.decode_new_tokens} new tokens after a {inputs['input_ids'].shape[1]}-token left-padded "
            f"prompt, n={cfg.n_experts} r={cfg.r}; median of {cfg.decode_rounds} interleaved rounds, "
            f"per-round ratios {spread(per_round_ratios(values, 'pac', 'lora'))}; "
            f"LoRA {statistics.median(values['lora']):.0f} tokens/s"
        )
        met = ratio >= DECODE_TARGET
        if not met and cfg.profile:
            notes += (
                f". PROFILE pac: {profile_ops(runs['pac'], device).text()}"
                f". PROFILE lora: {profile_ops(runs['lora'], device).text()}"
            )
        results.append(
            Result(
                "decode",
                f"pac_over_lora_decode_tokens_per_s[{name},b{batch_size}]",
                ratio,
                "x",
                f">= {DECODE_TARGET}",
                met,
                label,
                notes,
            )
        )
        results.append(
            Result(
                "decode",
                f"pac_decode_tokens_per_s[{name},b{batch_size}]",
                statistics.median(values["pac"]),
                "tokens/s",
                device=label,
                notes="median over rounds, all rows of the batch counted",
            )
        )
    return results
