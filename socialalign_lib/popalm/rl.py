"""PopALM step 3: PPO from the SFT model against the like reward, with or without the curriculum.

:class:`PopalmReward` is PopALM's "enhanced" reward: the standardised reward-model score plus ``rouge_weight`` ×
the best ROUGE-L F1 (characters) against the event's top-liked replies (PopALM: ROUGE-Lsum F against the 10 gold
replies, weight 1). :func:`run_ppo` puts fresh LoRA adapters on a copy of the SFT model (their base is the frozen
reference), and at every step asks a sampler (:mod:`~socialalign_lib.popalm.curriculum`) which training events
to use, samples ``samples_per_prompt`` replies per event, scores them, keeps the best ``keep_best`` of each
event's replies (PopALM's reward ranking), optionally filters them by PopALM's self-paced rule, and takes one PPO
step (:class:`~socialalign_lib.popalm.ppo.PPOTrainer`). PopALM's CL-PPO is :meth:`PopalmPPOConfig.cl_ppo` with a
uniform sampler; our event-level curriculum is a sampler (:mod:`~socialalign_lib.popalm.curriculum`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..metrics import rouge_f1
from ..popularity.smp_llm_train import LoraSettings
from .curriculum import self_paced_mask
from .data import Event
from .ppo import PPOConfig, PPOTrainer, batch_sequences, response_logprobs
from .reward import RewardScorer

__all__ = ["PopalmReward", "PopalmPPOConfig", "PPORun", "best_per_group", "best_rouge", "run_ppo"]

Sampler = Callable[[int], tuple[list[str], int]]


def best_rouge(reply: str, refs: Sequence[str], key: str = "rouge-l", tokenizer: str = "char") -> float:
    """Best ROUGE F1 (``key``) of ``reply`` over ``refs`` (0 for an empty reply or no references)."""
    if not reply.strip() or not refs:
        return 0.0
    return max(rouge_f1(reply, r, tokenizer)[key] for r in refs if r.strip())  # type: ignore[arg-type]


class PopalmReward:
    """``reward(events, replies)`` → ``{"total", "rm", "rouge"}`` arrays ``[n]``:
    ``total = rm + rouge_weight · best ROUGE-L(reply, event's n_refs top-liked replies)``."""

    def __init__(self, scorer: RewardScorer, rouge_weight: float = 1.0, n_refs: int = 10):
        self.scorer, self.rouge_weight, self.n_refs = scorer, rouge_weight, n_refs

    def __call__(self, events: Sequence[Event], replies: Sequence[str]) -> dict[str, np.ndarray]:
        rm = self.scorer([e.prompt for e in events], list(replies))
        rouge = (
            np.array([best_rouge(r, e.top(self.n_refs)) for e, r in zip(events, replies)], dtype=np.float32)
            if self.rouge_weight
            else np.zeros(len(replies), dtype=np.float32)
        )
        return {"total": rm + self.rouge_weight * rouge, "rm": rm, "rouge": rouge}


@dataclass
class PopalmPPOConfig:
    """One PPO run: ``steps`` × (``prompts_per_step`` events × ``samples_per_prompt`` replies).

    ``keep_best``: PopALM's reward ranking: of each event's ``samples_per_prompt`` replies keep the ``keep_best``
    with the highest total reward, before the PPO step (PopALM's CL-PPO: best 1 of 3); None keeps every sample.
    ``pace``: PopALM's self-paced filter on the kept samples, ``|reward × p| > pace`` (None: off), lowered
    ×``pace_decay`` per step; a step is skipped when fewer than ``ppo.mini_batch_size`` samples pass.
    :meth:`cl_ppo` sets the published values."""

    steps: int = 60
    prompts_per_step: int = 8
    samples_per_prompt: int = 2
    ppo: PPOConfig = field(default_factory=PPOConfig)
    lora: LoraSettings = field(default_factory=lambda: LoraSettings(r=8, alpha=16, dropout=0.0))
    pace: float | None = None
    pace_decay: float = 0.95
    keep_best: int | None = None

    def __post_init__(self) -> None:
        if self.keep_best is not None and not 1 <= self.keep_best <= self.samples_per_prompt:
            raise ValueError(
                f"keep_best must be in [1, samples_per_prompt={self.samples_per_prompt}], "
                f"got {self.keep_best}"
            )

    @classmethod
    def cl_ppo(cls, **overrides: Any) -> PopalmPPOConfig:
        """PopALM's CL-PPO as published: 3 sampled replies per post, the best 1 by reward kept, then the self-paced
        filter with pace 0.01 decaying ×0.95 per batch."""
        return cls(**{"samples_per_prompt": 3, "keep_best": 1, "pace": 0.01, "pace_decay": 0.95, **overrides})


def best_per_group(rewards: np.ndarray, group_size: int, keep: int) -> np.ndarray:
    """Indices of the ``keep`` highest ``rewards`` in each consecutive group of ``group_size`` (the samples of one
    prompt), in sample order within a group; ties go to the earlier sample."""
    rewards = np.asarray(rewards, dtype=float)
    if len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    out = []
    for start in range(0, len(rewards), group_size):
        order = np.argsort(-rewards[start : start + group_size], kind="stable")[:keep]
        out += sorted(start + int(i) for i in order)
    return np.array(out, dtype=int)


@dataclass
class PPORun:
    """The trained policy (a peft model: adapters on the SFT model), its trainer and one stats row per step."""

    model: Any
    trainer: PPOTrainer
    history: list[dict[str, float]]
    seconds: float


def run_ppo(
    sft_model: Any,
    tokenizer: Any,
    events: Sequence[Event],
    reward: PopalmReward,
    sampler: Sampler,
    cfg: PopalmPPOConfig | None = None,
    desc: str = "PPO",
    progress: bool = True,
) -> PPORun:
    """PPO on a copy of ``sft_model`` (left untouched). ``events`` are the training events the sampler's ids refer
    to. History rows: ``step``, ``stage``, ``score`` (mean total reward), ``rm``, ``rouge``, ``kl`` (nats per
    reply), ``kl_coef``, losses, ``kept`` (samples the PPO step gets: after ``keep_best`` and the self-paced filter).
    ``rm`` and ``rouge`` average every sampled reply (before the ranking)."""
    from peft import get_peft_model

    cfg = cfg or PopalmPPOConfig()
    by_id = {e.event_id: e for e in events}
    model = get_peft_model(copy.deepcopy(sft_model), cfg.lora.peft_config())
    trainer = PPOTrainer(model, cfg.ppo, tokenizer.pad_token_id, tokenizer.eos_token_id)
    query_cache: dict[str, torch.Tensor] = {}

    def query(e: Event) -> torch.Tensor:
        if e.event_id not in query_cache:
            query_cache[e.event_id] = tokenizer(
                e.prompt, return_tensors="pt", add_special_tokens=False
            ).input_ids[0]
        return query_cache[e.event_id]

    history, pace = [], cfg.pace
    start = time.perf_counter()
    for step in tqdm(range(cfg.steps), desc=desc, disable=not progress):
        ids, stage = sampler(step)
        batch = [by_id[i] for i in ids for _ in range(cfg.samples_per_prompt)]
        queries = [query(e) for e in batch]
        responses = trainer.generate(queries)
        texts = [tokenizer.decode(r, skip_special_tokens=True).strip() for r in responses]
        r = reward(batch, texts)
        chosen = (
            best_per_group(r["total"], cfg.samples_per_prompt, cfg.keep_best)
            if cfg.keep_best is not None
            else np.arange(len(batch))
        )
        keep = np.ones(len(chosen), dtype=bool)
        if pace is not None:
            logp = _mean_logprobs(trainer, [queries[i] for i in chosen], [responses[i] for i in chosen])
            keep = self_paced_mask(r["total"][chosen], logp, pace)
            pace *= cfg.pace_decay
        row: dict[str, float] = {
            "step": step,
            "stage": stage,
            "kept": int(keep.sum()),
            "rm": float(r["rm"].mean()),
            "rouge": float(r["rouge"].mean()),
        }
        if keep.sum() >= cfg.ppo.mini_batch_size:
            idx = chosen[keep]
            stats = trainer.step([queries[i] for i in idx], [responses[i] for i in idx], r["total"][idx])
            row.update(stats)
        else:
            row["score"] = float(r["total"].mean())
        history.append(row)
    return PPORun(trainer.policy.model, trainer, history, time.perf_counter() - start)


@torch.no_grad()
def _mean_logprobs(
    trainer: PPOTrainer, queries: Sequence[torch.Tensor], responses: Sequence[torch.Tensor]
) -> np.ndarray:
    ids, mask, rmask, q_len = batch_sequences(queries, responses, trainer.pad_token_id, trainer.device)
    logp = response_logprobs(trainer.policy.model, ids, mask, q_len, trainer.cfg.temperature)
    return ((logp * rmask).sum(1) / rmask.sum(1).clamp(min=1)).cpu().numpy()
