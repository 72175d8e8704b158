"""Batched PAC-LoRA generation for the macro level: replies per minute at batch 1, 8, 32.

Times the course's own generation path, `socialllm.generate_replies` (the call notebooks 04-06 make for
every (user, topic) pair): chat prompts left-padded per batch, spans shifted by PAC-LoRA itself, the
official sampling settings (temperature 0.7, top-p 0.9, top-k 20, repetition penalty 1.2) with per-row
seeded noise, the gate read-out per batch, each reply stopping at `<|im_end|>` or after
`gen_new_tokens`. A batch decodes until its longest reply ends, which is included in the time (as in
real use). The adapter is freshly initialised (B = 0): speed does not depend on trained weights, but
reply lengths do, so the notes give the mean reply length.
"""

from __future__ import annotations

import time
from typing import Any

from torch import nn

from socialalign_lib.generate.decode import generate_replies
from socialalign_lib.generate.sampling import GenerationConfig

from .common import BenchConfig, Result, profile_ops, synchronize
from .workloads import with_pac_lora

REPLIES_AIM = 300.0


def timed_replies(
    model: nn.Module, tokenizer: Any, records: list[dict[str, Any]], gen: GenerationConfig, device: str
) -> tuple[float, list[str]]:
    """Seconds to generate one reply per record, and the replies."""
    synchronize(device)
    start = time.perf_counter()
    replies = generate_replies(model, tokenizer, records, gen, progress=False)
    synchronize(device)
    return time.perf_counter() - start, list(replies["generated"])


def bench_generation(
    cfg: BenchConfig,
    base: nn.Module,
    tokenizer: Any,
    records: list[dict[str, Any]],
    name: str,
    device: str,
    label: str,
) -> list[Result]:
    """Replies per minute of PAC-LoRA sampling at each batch size of `cfg.gen_batches` (aim >= 300/min)."""
    model = with_pac_lora(base, cfg).eval()
    records = records[: cfg.gen_prompts]
    warm = min(cfg.gen_batches)
    timed_replies(
        model, tokenizer, records[:warm], GenerationConfig(batch_size=warm, max_new_tokens=4), device
    )
    results = []
    for batch_size in cfg.gen_batches:
        gen = GenerationConfig(batch_size=batch_size, max_new_tokens=cfg.gen_new_tokens, seed=cfg.seed)
        seconds, replies = timed_replies(model, tokenizer, records, gen, device)
        per_minute = 60 * len(records) / seconds
        tokens = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in replies]
        notes = (
            f"socialllm.generate_replies on {len(records)} held-out records, left-padded batches of {batch_size}, "
            f"official sampling, max_new_tokens={cfg.gen_new_tokens}, mean reply {sum(tokens) / len(tokens):.1f} "
            f"tokens, {seconds:.1f} s"
        )
        met = per_minute >= REPLIES_AIM
        if not met and cfg.profile:
            chunk = records[:batch_size]
            notes += (
                ". PROFILE (one batch): "
                + profile_ops(
                    lambda chunk=chunk, gen=gen: generate_replies(
                        model, tokenizer, chunk, gen, progress=False
                    ),
                    device,
                    calls=1,
                ).text()
            )
        results.append(
            Result(
                "generation",
                f"replies_per_minute[{name},b{batch_size}]",
                per_minute,
                "replies/min",
                f">= {REPLIES_AIM:.0f} (aim)",
                met,
                label,
                notes,
            )
        )
    return results
