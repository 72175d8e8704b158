"""A compact PPO for causal language models with LoRA adapters (TRL 1.x removed its PPO trainer).

The recipe is the one of Ziegler et al. (2019) / Ouyang et al. (2022) as TRL's old ``PPOTrainer`` ran it, which
PopALM used (γ=1, λ=0.95, clip 0.2, value clip 0.2, vf_coef 0.1, adaptive KL with target 6):

1. **Rollout.** Sample a response for each query from the current policy (:func:`sample_responses`).
2. **Score.** A scalar score per response from any reward function (PopALM: reward model + ROUGE).
3. **Per-token rewards** (:func:`token_rewards`): ``r_t = −β·(log π(a_t) − log π_ref(a_t))``, plus the score on
   the response's last token. ``π_ref`` is the frozen SFT model: the *same* network with its LoRA adapters
   disabled, so no second copy is held in memory. β follows an :class:`AdaptiveKLController`.
4. **Advantages** (:func:`compute_gae`): generalised advantage estimation over response tokens from the value
   head's estimates, then whitened.
5. **Update** (:func:`ppo_losses`): a few epochs over minibatches of the rollout minimising the clipped policy
   loss plus ``vf_coef`` × the clipped value loss; only the adapters and the value head are trainable.

Shapes: ``B`` sequences, queries left-padded to ``Q`` tokens, responses right-padded to ``R`` tokens;
per-token tensors over the response are ``[B, R]`` with a 0/1 ``mask`` (1 up to and including the eos).
The model sees ``[pad…pad, query, response, pad…pad]`` with ``position_ids`` from the attention mask, so padding
never shifts positions. Sampling uses ``temperature`` with no top-k / top-p truncation by default, and the
log-probabilities are taken at the same temperature: PPO's ratio then compares the distribution that really
sampled the tokens (TRL's PPO sampled with top-p but scored without it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from trl.trainer.utils import pad, selective_log_softmax

__all__ = [
    "PPOConfig",
    "masked_mean",
    "masked_whiten",
    "compute_gae",
    "token_rewards",
    "ppo_losses",
    "AdaptiveKLController",
    "ValueHead",
    "PolicyWithValue",
    "batch_sequences",
    "response_logprobs",
    "sample_responses",
    "PPOTrainer",
]


@dataclass
class PPOConfig:
    """PPO knobs. Defaults: the course model on CPU; PopALM's values where they carry over (γ, λ, clips, vf_coef,
    KL init). PopALM: lr 1.41e-5, batch 4, mini-batch 2, 1 PPO epoch, KL target 6, horizon 10000."""

    learning_rate: float = 1e-3
    batch_size: int = 16  # rollouts per PPO step (queries × samples)
    mini_batch_size: int = 8
    ppo_epochs: int = 2
    gamma: float = 1.0
    lam: float = 0.95
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    init_kl_coef: float = 0.1
    adaptive_kl: bool = True
    kl_target: float = 6.0
    kl_horizon: int = 10000
    whiten_advantages: bool = True
    max_grad_norm: float = 1.0
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_k: int = 0  # 0: no truncation (keeps the PPO ratio exact)
    top_p: float = 1.0
    seed: int = 0


# ------------------------------------------------------------------------------------------------ the math
def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` is 1 (over ``dim``, or all)."""
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """``(x − mean) / std`` with statistics over the masked entries (unbiased variance, as TRL)."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = masked_mean((x - mean) ** 2, mask) * (n / (n - 1).clamp(min=1))
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return out if shift_mean else out + mean


def compute_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over response tokens ``[B, R]``.

    ``δ_t = r_t + γ V_{t+1} − V_t`` with ``V`` = 0 after the last valid token, ``A_t = δ_t + γλ A_{t+1}``;
    returns ``(advantages, returns = advantages + values)``, both 0 on padding.
    """
    rewards, values = rewards * mask, values * mask
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        adv[:, t] = last
    adv = adv * mask
    return adv, (adv + values) * mask


def token_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards ``[B, R]``: ``−kl_coef · (logπ − logπ_ref)`` on every response token, plus ``scores [B]``
    on each sequence's last valid token. Also returns the per-token KL estimate ``logπ − logπ_ref`` (masked);
    its sum over a sequence estimates KL(π‖π_ref) of that response."""
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = (mask.sum(1) - 1).clamp(min=0).long()
    rewards[torch.arange(len(scores)), last] += scores.to(rewards.dtype)
    return rewards * mask, kl


def ppo_losses(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    values: torch.Tensor,
    old_values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float = 0.2,
    cliprange_value: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """PPO's clipped surrogate and clipped value loss, averaged over masked tokens ``[B, R]``.

    ``pg = mean(max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)))`` with ``ρ = exp(logπ − logπ_old)``;
    ``vf = ½·mean(max((V − G)², (clip(V, V_old ± ε_v) − G)²))``. Returns ``(pg_loss, vf_loss, stats)``.
    """
    ratio = torch.exp(logprobs - old_logprobs)
    pg1 = -advantages * ratio
    pg2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg_loss = masked_mean(torch.maximum(pg1, pg2), mask)
    v_clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    vf1, vf2 = (values - returns) ** 2, (v_clipped - returns) ** 2
    vf_loss = 0.5 * masked_mean(torch.maximum(vf1, vf2), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((pg2 > pg1).float(), mask).item(),
            "vf_clipfrac": masked_mean((vf2 > vf1).float(), mask).item(),
            "approx_kl": 0.5 * masked_mean((logprobs - old_logprobs) ** 2, mask).item(),
        }
    return pg_loss, vf_loss, stats


class AdaptiveKLController:
    """β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon) (Ziegler et al. 2019): β rises when the policy drifts
    further than ``target`` nats from the reference and falls when it stays closer. ``adaptive=False``: fixed β."""

    def __init__(self, init: float, target: float, horizon: int, adaptive: bool = True):
        self.value, self.target, self.horizon, self.adaptive = init, target, horizon, adaptive

    def update(self, current_kl: float, n_steps: int) -> None:
        if not self.adaptive:
            return
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon


# ------------------------------------------------------------------------------------------------ the model
class ValueHead(nn.Module):
    """``V(s_t)``: a linear map of the last hidden state ``[B, T, d] → [B, T]``, zero-initialised so the first
    value estimates are 0 (the returns' scale is learnt, not assumed)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.summary = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.summary.weight)
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.summary(hidden.to(self.summary.weight.dtype)).squeeze(-1)


class PolicyWithValue(nn.Module):
    """A peft-wrapped causal LM (the policy; its base with adapters disabled is the reference) and a value head
    on its last hidden state. ``forward(ids, mask) → (logits [B, T, V], values [B, T])``."""

    def __init__(self, model: Any):
        super().__init__()
        if not hasattr(model, "disable_adapter"):
            raise TypeError(
                "the policy must be a peft model (e.g. get_peft_model(sft_model, LoraConfig(...))): "
                "its base with adapters disabled is the frozen reference"
            )
        self.model = model
        hidden = model.get_base_model().config.get_text_config().hidden_size
        self.value_head = ValueHead(hidden).to(next(model.parameters()).device)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=_positions(attention_mask),
            output_hidden_states=True,
            use_cache=False,
        )
        return out.logits, self.value_head(out.hidden_states[-1])


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token (left padding does not shift them)."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def batch_sequences(
    queries: Sequence[torch.Tensor],
    responses: Sequence[torch.Tensor],
    pad_token_id: int,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """``[pad…, query, response, …pad]`` ids and attention mask ``[B, Q+R]``, the response mask ``[B, R]``
    (float) and ``Q``: queries left-padded to a common end, responses right-padded from a common start, so the
    response tokens of every row sit at columns ``Q..Q+R−1``."""
    if len(queries) != len(responses):
        raise ValueError(f"{len(queries)} queries but {len(responses)} responses")
    q = pad([x.to(device) for x in queries], pad_token_id, padding_side="left")
    qm = pad([torch.ones_like(x, device=device) for x in queries], 0, padding_side="left")
    r = pad([x.to(device) for x in responses], pad_token_id, padding_side="right")
    rm = pad([torch.ones_like(x, device=device) for x in responses], 0, padding_side="right")
    return torch.cat([q, r], 1), torch.cat([qm, rm], 1), rm.float(), q.shape[1]


def response_logprobs(
    model: Any, ids: torch.Tensor, mask: torch.Tensor, q_len: int, temperature: float = 1.0
) -> torch.Tensor:
    """``log π(response token | prefix)`` at ``temperature`` for a :func:`batch_sequences` batch, ``[B, R]``
    (padding positions hold junk: multiply by the response mask)."""
    logits = model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask), use_cache=False).logits
    return selective_log_softmax(logits[:, q_len - 1 : -1], ids[:, q_len:], temperature=temperature)


@torch.no_grad()
def sample_responses(
    model: Any,
    queries: Sequence[torch.Tensor],
    pad_token_id: int,
    eos_token_id: int,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    do_sample: bool = True,
) -> list[torch.Tensor]:
    """One sampled response per query (1-D id tensors), each cut after its first eos (kept) or at
    ``max_new_tokens``. Queries are left-padded into one ``generate`` call."""
    device = next(model.parameters()).device
    ids = pad([q.to(device) for q in queries], padding_value=pad_token_id, padding_side="left")
    mask = pad([torch.ones_like(q, device=device) for q in queries], padding_value=0, padding_side="left")
    gen: dict[str, Any] = dict(
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
    )
    gen.update(
        dict(temperature=temperature, top_k=top_k, top_p=top_p)
        if do_sample
        else dict(temperature=None, top_k=None, top_p=None)
    )
    out = model.generate(input_ids=ids, attention_mask=mask, **gen)[:, ids.shape[1] :]
    responses = []
    for row in out:
        hits = (row == eos_token_id).nonzero()
        responses.append(row[: int(hits[0]) + 1] if len(hits) else row)
    return responses


# ------------------------------------------------------------------------------------------------ the trainer
class PPOTrainer:
    """``generate(queries)`` → responses; ``step(queries, responses, scores)`` → one PPO update and its stats.

    ``model`` is a peft model whose adapters (and the new value head) are the only trainable parameters; with the
    adapters disabled it is the frozen reference. Construction seeds torch's global RNG with ``cfg.seed``
    (rollout sampling draws from it), so two trainers with one seed sample alike.
    Stats per step: ``score`` (mean), ``kl`` (mean per-sequence
    KL(π‖π_ref) estimate, nats), ``kl_coef``, ``reward`` (score − β·KL), losses, clip fractions, ``response_len``.
    """

    def __init__(self, model: Any, cfg: PPOConfig, pad_token_id: int, eos_token_id: int):
        self.cfg = cfg
        self.pad_token_id, self.eos_token_id = pad_token_id, eos_token_id
        torch.manual_seed(cfg.seed)
        self.policy = PolicyWithValue(model)
        params = [p for p in self.policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=cfg.learning_rate)
        self.kl_ctl = AdaptiveKLController(cfg.init_kl_coef, cfg.kl_target, cfg.kl_horizon, cfg.adaptive_kl)
        self.device = next(model.parameters()).device

    def generate(self, queries: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        c = self.cfg
        self.policy.eval()
        return sample_responses(
            self.policy.model,
            queries,
            self.pad_token_id,
            self.eos_token_id,
            c.max_new_tokens,
            c.temperature,
            c.top_k,
            c.top_p,
        )

    def _logprobs(
        self, ids: torch.Tensor, mask: torch.Tensor, q_len: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities of the response tokens and the values of the states before them, ``[B, R]``."""
        logits, values = self.policy(ids, mask)
        logp = selective_log_softmax(
            logits[:, q_len - 1 : -1], ids[:, q_len:], temperature=self.cfg.temperature
        )
        return logp, values[:, q_len - 1 : -1]

    def step(
        self,
        queries: Sequence[torch.Tensor],
        responses: Sequence[torch.Tensor],
        scores: torch.Tensor | Sequence[float],
    ) -> dict[str, float]:
        c = self.cfg
        scores = torch.as_tensor(scores, dtype=torch.float32, device=self.device)
        ids, mask, rmask, q_len = batch_sequences(queries, responses, self.pad_token_id, self.device)
        self.policy.eval()  # no dropout anywhere: the first minibatch's ratio is exactly 1
        with torch.no_grad():
            old_logp, old_values = self._logprobs(ids, mask, q_len)
            with self.policy.model.disable_adapter():
                ref_logp = response_logprobs(self.policy.model, ids, mask, q_len, c.temperature)
            rewards, kl = token_rewards(scores, old_logp, ref_logp, rmask, self.kl_ctl.value)
            advantages, returns = compute_gae(rewards, old_values, rmask, c.gamma, c.lam)
            if c.whiten_advantages:
                advantages = masked_whiten(advantages, rmask) * rmask
        logs: dict[str, list[float]] = {
            "pg_loss": [],
            "vf_loss": [],
            "clipfrac": [],
            "vf_clipfrac": [],
            "approx_kl": [],
        }
        n = len(queries)
        for _ in range(c.ppo_epochs):
            order = torch.randperm(n, device=self.device)
            for s in range(0, n, c.mini_batch_size):
                mb = order[s : s + c.mini_batch_size]
                logp, values = self._logprobs(ids[mb], mask[mb], q_len)
                pg_loss, vf_loss, st = ppo_losses(
                    logp,
                    old_logp[mb],
                    values,
                    old_values[mb],
                    advantages[mb],
                    returns[mb],
                    rmask[mb],
                    c.cliprange,
                    c.cliprange_value,
                )
                loss = pg_loss + c.vf_coef * vf_loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(
                    [p for p in self.policy.parameters() if p.requires_grad], c.max_grad_norm
                )
                self.optimizer.step()
                logs["pg_loss"].append(pg_loss.item())
                logs["vf_loss"].append(vf_loss.item())
                for k, v in st.items():
                    logs[k].append(v)
        seq_kl = kl.sum(1).mean().item()
        stats = {
            "score": scores.mean().item(),
            "kl": seq_kl,
            "kl_coef": self.kl_ctl.value,
            "reward": (scores - self.kl_ctl.value * kl.sum(1)).mean().item(),
            "response_len": rmask.sum(1).mean().item(),
            **{k: sum(v) / len(v) for k, v in logs.items()},
        }
        self.kl_ctl.update(seq_kl, n)
        return stats
