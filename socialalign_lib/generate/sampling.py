"""How a reply is sampled: the decoding settings and the two logits processors that make sampling batch-invariant
and keep a small model able to stop.

Sampling uses the official inference settings (temperature 0.7, top-p 0.9, top-k 20, repetition penalty 1.2)
through transformers' own logits processors, but draws each row's token by the Gumbel-max trick with noise seeded
by (seed, case, step) (:class:`RowSeededGumbel`): the same record gets the same reply whatever batch it lands in,
so a resumed or re-batched run reproduces the uninterrupted one. One deliberate difference from the official
inference: the repetition penalty spares the stop tokens, which the chat prompt itself contains
(:class:`EosExemptRepetitionPenalty`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["EosExemptRepetitionPenalty", "GenerationConfig", "RowSeededGumbel", "stop_token_ids"]


@dataclass
class GenerationConfig:
    """Decoding settings. Defaults = the official SocialAlign inference (one sample per (user, topic)), with
    fewer new tokens: the world's replies are at most 21 tokens of the course tokenizer (mean 7.6), so 32 leaves
    room for every real reply and stops a run-on reply early (a batch decodes as long as its longest row; the
    official inference allows 256 for real Weibo posts). ``do_sample=False`` is greedy: the argmax after the
    repetition penalty (set ``repetition_penalty=1.0`` for the plain argmax); temperature, top-p and top-k then do
    nothing.

    Its fields, hashed, name the replies files of ``generate.paths.generations_path``: renaming or adding one
    moves every such file.

    Args:
        batch_size: prompts per ``generate`` call (left padded).
        seed: with the case id and the step, seeds each row's sampling noise (see :class:`RowSeededGumbel`).
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
    survives that; a small model's does not, and it then never stops (the measurement on the course model is in
    docs/design.md, "Generation"). The penalty is meant against repeating *content*, so the stop tokens keep their
    unpenalised logits (``GenerationConfig.penalize_eos=True`` restores the official behaviour).
    """

    def __init__(
        self, penalty: float, eos_ids: Sequence[int], prompt_ignore_length: torch.Tensor | None = None
    ):
        from transformers import RepetitionPenaltyLogitsProcessor

        self.penalty = RepetitionPenaltyLogitsProcessor(
            float(penalty), prompt_ignore_length=prompt_ignore_length
        )
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
            raise ValueError(
                f"RowSeededGumbel has {len(self.keys)} row keys but the batch has {scores.shape[0]} rows"
            )
        noise = torch.empty(scores.shape, dtype=torch.float32)
        generator = torch.Generator()
        for i, key in enumerate(self.keys):
            generator.manual_seed(self._row_seed(key, step))
            noise[i] = torch.rand(scores.shape[1], generator=generator, dtype=torch.float32)
        gumbel = -torch.log(-torch.log(noise.clamp(1e-10, 1.0 - 1e-7)))
        return scores + gumbel.to(scores.device, scores.dtype)


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
