"""What the benchmarks run on: the course model, real tiny-world batches and prompts, random Qwen2s, adapters.

Batches are real SocialAlign chat records of the tiny world (prompt ~480 tokens with user and news
spans, loss on the response only), built by the course's own code (`pipeline.course_data`,
`records.build_chat_example`, `train.SpanCollator`), so the benchmark times what the course trains.
The larger random models reuse the same token ids (they are < 4000, valid for any larger vocabulary).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from socialalign_lib import paths
from socialalign_lib.build.pipeline import course_data
from socialalign_lib.build.records.chat import build_chat_example
from socialalign_lib.models import load_base_model
from socialalign_lib.pac_lora import DEFAULT_TARGET_MODULES, SPANS_KWARG, PacLoraConfig, get_pac_model
from socialalign_lib.train import SpanCollator

from .common import BenchConfig, ModelShape

#: Splits whose prompts are used for generation (held-out cases; speed does not depend on it, realism does).
PROMPT_SPLITS: tuple[str, ...] = ("test_topic", "test_user", "validation", "test_both")


@dataclass
class Prompt:
    """A generation prompt: token ids and spans `[[user_start, user_end], [news_start, news_end]]` (row coordinates)."""

    ids: list[int]
    spans: list[list[int]]


@dataclass
class CourseWorkload:
    """The course model and its data, loaded once per benchmark run.

    Attributes:
        model: the embedded course model (eval mode) on the benchmark device, in its compute dtype.
        tokenizer: its tokenizer.
        examples: tokenised SFT records (`input_ids`, `labels`, `user_span`, `news_span`, ...).
        records: held-out SocialAlign records (dicts), for `socialllm.generate_replies`.
        prompts: the same records as generation prompts with token spans, for the decode benchmark.
    """

    model: nn.Module
    tokenizer: Any
    examples: list[dict[str, Any]]
    records: list[dict[str, Any]]
    prompts: list[Prompt]

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)


def load_course_workload(
    device: str, dtype: torch.dtype, n_examples: int, n_prompts: int, seed: int = 0
) -> CourseWorkload:
    """Load the embedded model and render `n_examples` train records and `n_prompts` prompts of the tiny world."""
    model, tokenizer = load_base_model(paths.EMBEDDED_MODEL, device=device, dtype=dtype)
    data = course_data(size="tiny", seed=seed)
    train = data.split("train")
    if len(train) < n_examples:
        raise ValueError(f"the tiny world has {len(train)} train records, {n_examples} requested")
    examples = [build_chat_example(tokenizer, train[i]) for i in range(n_examples)]
    records = [record for split in PROMPT_SPLITS for record in data.split(split)][:n_prompts]
    if len(records) < n_prompts:
        raise ValueError(f"the tiny world has {len(records)} held-out records, {n_prompts} requested")
    prompts = []
    for record in records:
        example = build_chat_example(tokenizer, record)
        prompts.append(
            Prompt(
                example["input_ids"][: example["prompt_length"]], [example["user_span"], example["news_span"]]
            )
        )
    return CourseWorkload(model, tokenizer, examples, records, prompts)


def train_batch(examples: list[dict[str, Any]], pad_id: int, device: str) -> dict[str, torch.Tensor]:
    """Right-padded batch with `labels` (-100 on prompt and pads) and `pac_spans [batch, 2, 2]`."""
    batch = SpanCollator(pad_id)(examples)
    return {name: tensor.to(device) for name, tensor in batch.items()}


def prompt_batch(prompts: list[Prompt], pad_id: int, device: str) -> dict[str, torch.Tensor]:
    """Left-padded prompts for batched generation: `input_ids`, `attention_mask` `[b, seq]` and `pac_spans`
    `[b, 2, 2]` in each row's own coordinates (PAC-LoRA shifts them by the leading pads)."""
    seq = max(len(p.ids) for p in prompts)
    ids = torch.full((len(prompts), seq), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), seq), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, seq - len(prompt.ids) :] = torch.as_tensor(prompt.ids)
        mask[row, seq - len(prompt.ids) :] = 1
    spans = torch.tensor([p.spans for p in prompts], dtype=torch.long)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), SPANS_KWARG: spans.to(device)}


def random_qwen2(
    shape: ModelShape, vocab_size: int, pad_id: int, device: str, dtype: torch.dtype, seed: int = 0
) -> nn.Module:
    """A randomly initialised `Qwen2ForCausalLM` of `shape` (eval mode) on `device` in `dtype`."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=shape.vocab_size or vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=2048,
        tie_word_embeddings=shape.tie_word_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": float(shape.rope_theta)},
        pad_token_id=pad_id,
        bos_token_id=pad_id,
        eos_token_id=pad_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = pad_id
    return model.to(device=device, dtype=dtype).eval()


def pac_config(cfg: BenchConfig) -> PacLoraConfig:
    return PacLoraConfig(
        n_experts=cfg.n_experts, r=cfg.r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout
    )


def lora_config(cfg: BenchConfig) -> LoraConfig:
    """peft LoRA with PAC-LoRA's rank, alpha, dropout and target modules."""
    return LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(DEFAULT_TARGET_MODULES),
        task_type="CAUSAL_LM",
    )


def with_pac_lora(base: nn.Module, cfg: BenchConfig, copy_base: bool = True) -> PeftModel:
    """PAC-LoRA (n experts) on a copy of `base` (injection modifies the model in place)."""
    torch.manual_seed(cfg.seed)
    return get_pac_model(copy.deepcopy(base) if copy_base else base, pac_config(cfg))


def with_lora(base: nn.Module, cfg: BenchConfig, copy_base: bool = True) -> PeftModel:
    """Plain peft LoRA, same rank and targets, on a copy of `base`."""
    torch.manual_seed(cfg.seed)
    return get_peft_model(copy.deepcopy(base) if copy_base else base, lora_config(cfg))


def linear_params(model: nn.Module) -> int:
    """Parameters that multiply every token: all `nn.Linear` weights (LM head included, embeddings not).

    For a PeftModel this counts base layers and adapter matrices; PAC-LoRA's stacked experts are
    `n` times LoRA's but each token only meets the folded `[d, r]` and `[r, k]` mixtures, so count
    FLOPs on the plain-LoRA model (what a token actually costs).
    """
    seen: set[int] = set()
    total = 0
    for module in model.modules():
        if isinstance(module, nn.Linear) and id(module.weight) not in seen:
            seen.add(id(module.weight))
            total += module.weight.numel()
    return total
