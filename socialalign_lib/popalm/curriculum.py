"""Easy-to-hard curriculum over training events for PPO (PopALM's answer to noisy like labels).

Likes are a noisy label: who replied early and how many followers they have move a reply's likes as much as what
it says. An event whose like order is mostly noise teaches the policy little and can teach it the wrong thing, so
PopALM lets the model learn from the clearest samples first. Here the unit is the event:

1. **Difficulty** (:func:`event_difficulty`), lower = easier. ``"rm_margin"``: minus the reward-model gap between
   the event's top-k and bottom-k liked replies (where the reward model and the likes agree strongly, the
   event's trendy replies are clearly better and the reward is trustworthy); ``"like_gap"``: minus the
   ``log1p(likes)`` gap between top-k and bottom-k (from the likes alone: a flat like distribution is mostly noise).
2. **Stages** (:func:`curriculum_stages`): events sorted easy → hard and cut into ``n_stages`` equal groups.
3. **Schedule** (:class:`CurriculumSampler`): PPO's steps are split evenly over the stages; at stage ``s`` the
   prompts of a step are drawn from stages ``0..s`` (``cumulative=True``, "baby steps": easy events stay in the mix)
   or from stage ``s`` only. :class:`UniformSampler` is the no-curriculum baseline with the same interface.

PopALM's own, per-sample variant (keep a sample when ``|reward × p(sequence)| > pace``, pace decaying ×0.95
per batch) is :func:`self_paced_mask`; it needs sequence probabilities that a ~1M-parameter model makes
vanishingly small, so it uses the per-token geometric mean probability.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .data import Event

__all__ = [
    "DIFFICULTY_MEASURES",
    "event_difficulty",
    "curriculum_stages",
    "CurriculumSampler",
    "UniformSampler",
    "self_paced_mask",
]

DIFFICULTY_MEASURES: tuple[str, ...] = ("rm_margin", "like_gap")


def event_difficulty(
    events: Sequence[Event],
    measure: str = "rm_margin",
    score_fn: Callable[[list[str], list[str]], np.ndarray] | None = None,
    k: int = 3,
) -> dict[str, float]:
    """Difficulty per event (lower = easier): minus the gap between the mean of its ``k`` most-liked and its ``k``
    least-liked replies, measured by the reward model (``"rm_margin"``, ``score_fn(prompts, replies) → [n]``) or by
    ``log1p(likes)`` (``"like_gap"``). ``k`` is capped at half the event's replies so the groups never overlap."""
    if measure not in DIFFICULTY_MEASURES:
        raise ValueError(f"unknown difficulty measure {measure!r}; choose one of {DIFFICULTY_MEASURES}")
    if measure == "rm_margin" and score_fn is None:
        raise ValueError("measure 'rm_margin' needs score_fn (e.g. a RewardScorer)")
    out = {}
    for e in events:
        n = len(e.replies)
        if n < 2:
            raise ValueError(f"event {e.event_id!r} has {n} reply: a difficulty needs at least 2")
        kk = max(1, min(k, n // 2))
        if measure == "like_gap":
            if e.likes is None:
                raise ValueError(f"event {e.event_id!r} has no like counts for measure 'like_gap'")
            v = np.log1p(np.asarray(e.likes, dtype=float))
        else:
            v = np.asarray(score_fn([e.prompt] * n, list(e.replies)), dtype=float)  # type: ignore[misc]
        out[e.event_id] = -float(v[:kk].mean() - v[-kk:].mean())
    return out


def curriculum_stages(difficulty: Mapping[str, float], n_stages: int = 3) -> list[list[str]]:
    """Event ids sorted easy → hard (ties by id, so the order is deterministic) and cut into ``n_stages`` groups
    of (nearly) equal size; the first group is the easiest."""
    if n_stages < 1:
        raise ValueError(f"n_stages must be >= 1, got {n_stages}")
    if len(difficulty) < n_stages:
        raise ValueError(f"{len(difficulty)} events cannot fill {n_stages} stages")
    order = sorted(difficulty, key=lambda e: (difficulty[e], e))
    return [list(chunk) for chunk in np.array_split(np.array(order, dtype=object), n_stages)]


@dataclass
class _Draw:
    rng: np.random.Generator
    batch_size: int

    def draw(self, pool: Sequence[str]) -> list[str]:
        replace = len(pool) < self.batch_size
        return [pool[i] for i in self.rng.choice(len(pool), size=self.batch_size, replace=replace)]


class CurriculumSampler:
    """``sampler(step) → (event ids, stage)``: ``batch_size`` events for PPO step ``step`` of ``total_steps``,
    drawn (without replacement when the pool is big enough, seeded) from the stage pool of that step."""

    def __init__(
        self,
        stages: Sequence[Sequence[str]],
        total_steps: int,
        batch_size: int,
        cumulative: bool = True,
        seed: int = 0,
    ):
        if not stages or any(len(s) == 0 for s in stages):
            raise ValueError("every stage needs at least one event")
        self.stages = [list(s) for s in stages]
        self.total_steps, self.cumulative = total_steps, cumulative
        self._draw = _Draw(np.random.default_rng(seed), batch_size)

    def stage_of(self, step: int) -> int:
        return min(step * len(self.stages) // max(1, self.total_steps), len(self.stages) - 1)

    def pool(self, stage: int) -> list[str]:
        return [e for s in self.stages[: stage + 1] for e in s] if self.cumulative else self.stages[stage]

    def __call__(self, step: int) -> tuple[list[str], int]:
        stage = self.stage_of(step)
        return self._draw.draw(self.pool(stage)), stage


class UniformSampler:
    """The no-curriculum baseline: every step draws from all training events (stage is always 0)."""

    def __init__(self, event_ids: Sequence[str], batch_size: int, seed: int = 0):
        if not event_ids:
            raise ValueError("no events to sample")
        self.event_ids = list(event_ids)
        self._draw = _Draw(np.random.default_rng(seed), batch_size)

    def __call__(self, step: int) -> tuple[list[str], int]:
        return self._draw.draw(self.event_ids), 0


def self_paced_mask(rewards: np.ndarray, mean_logprobs: np.ndarray, pace: float) -> np.ndarray:
    """PopALM's self-paced filter: keep a sample when ``|reward × p| > pace``; ``p`` here is the per-token
    geometric mean probability ``exp(mean log p)`` (PopALM multiplied token probabilities, which a small model
    drives to ~0 for every sample). Returns a boolean mask ``[n]``; the caller lowers ``pace`` each batch
    (PopALM: ×0.95), admitting harder samples over time."""
    return np.abs(np.asarray(rewards) * np.exp(np.asarray(mean_logprobs))) > pace
