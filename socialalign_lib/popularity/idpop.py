"""IDPOP: DPO with a per-pair penalty that keeps the chosen answer's probability from falling (eq. 12-14).

Why (paper §2.4.2): with preference pairs whose answers differ by a digit or two ("9.94" vs "12.63"), DPO can
raise the *margin* between chosen and rejected while lowering the chosen answer's own probability - it then
predicts worse. DPO-Positive (Smaug) adds ``λ·max(0, log π_ref(y_w)/π(y_w))``; IDPOP makes the weight per
pair, larger when the two answers are almost equally good::

    L = E[ -log σ(β·log π(y_w)/π_ref(y_w) - β·log π(y_l)/π_ref(y_l))
          + μ_j · max(0, log π_ref(y_w) - log π(y_w)) ]
    μ_j = λ / (W_{j,c} - W_{j,r} + δ),     W = 10·exp(-α · M / (M_max - M_min))

with M the absolute error of an answer and M_max / M_min over the alignment set. The penalty sits *outside*
the sigmoid (Smaug puts it inside); log-probabilities are *sums* over the answer tokens (TRL's convention).
μ from the formula explodes when W_c ≈ W_r (it is λ/δ for a tie) - so it is clamped to ``[0, mu_max]``.

Pieces: :func:`weight_scores`, :func:`pair_mu` (eq. 13-14), :func:`build_preference_pairs` (two sampled
answers per prompt from the SFT model, chosen = the smaller error, §2.4.1), :func:`idpop_loss` (the loss on
log-probabilities, for tests and reading), :class:`IDPOPTrainer` (TRL's ``DPOTrainer`` with the per-pair μ
column carried through collator and signature columns and the penalty added to ``super()._compute_loss``)
and :func:`train_preference` (DPO or IDPOP with a fresh LoRA on the merged SFT model; the reference is the
SFT model itself, through peft's disabled adapter).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from trl import DPOConfig, DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

from .smp_llm import Example, parse_score
from .smp_llm_train import (
    LoraSettings,
    TrainResult,
    answer_records,
    fresh_copy,
    train_and_merge,
    trl_arguments,
)

MU_COLUMN = "mu"


# --------------------------------------------------------------------------------------------------------
# Weights and μ (eq. 13-14)
# --------------------------------------------------------------------------------------------------------


def weight_scores(
    errors: np.ndarray, alpha: float = 1.0, m_min: float | None = None, m_max: float | None = None
) -> np.ndarray:
    """Eq. 13: ``W = 10·exp(-α·M/(M_max - M_min))``; small errors weigh up to 10. ``m_min`` / ``m_max``
    default to the extremes of ``errors`` (pass the alignment set's when scoring a subset). A set whose errors
    are all equal has no range: its W is 10·exp(0)=10 everywhere (no preference strength to read)."""
    m = np.asarray(errors, dtype=float)
    lo = float(np.nanmin(m)) if m_min is None else m_min
    hi = float(np.nanmax(m)) if m_max is None else m_max
    span = hi - lo
    if not span > 0:
        return np.full_like(m, 10.0)
    return 10.0 * np.exp(-alpha * m / span)


def pair_mu(
    w_chosen: np.ndarray, w_rejected: np.ndarray, lam: float = 0.5, delta: float = 0.1, mu_max: float = 5.0
) -> np.ndarray:
    """Eq. 14: ``μ = λ / (W_c - W_r + δ)``, clamped to ``[0, mu_max]`` (the raw value is λ/δ for a tie and
    negative if a pair were mis-ordered). Shrinks as the chosen answer gets clearly better than the
    rejected."""
    gap = np.asarray(w_chosen, dtype=float) - np.asarray(w_rejected, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = lam / (gap + delta)
    raw = np.where(np.isfinite(raw), raw, mu_max)
    return np.clip(raw, 0.0, mu_max)


@dataclass
class IDPOPSettings:
    """Loss and preference-data knobs. ``lam`` = λ, ``alpha`` = α, ``delta`` = δ of eq. 13-14 (the paper gives
    no values: ours are chosen so μ spans about [λ/10, mu_max] on the world); ``beta`` is DPO's β.
    ``error_clip``: absolute errors are clipped here before eq. 13, because M_max is a maximum - one sampled
    "522023" would otherwise make every other W ≈ 10 and every μ ≈ λ/δ (None: no clipping, the paper's
    formula as written). An answer that is not a number gets the set's largest error (it can be rejected,
    never chosen)."""

    beta: float = 0.1
    lam: float = 0.5
    alpha: float = 1.0
    delta: float = 0.1
    mu_max: float = 5.0
    error_clip: float | None = 10.0


# --------------------------------------------------------------------------------------------------------
# Preference pairs (§2.4.1)
# --------------------------------------------------------------------------------------------------------


@dataclass
class PreferencePair:
    """One alignment pair: the prompt, the chosen and rejected answer texts and their absolute errors."""

    example: Example
    chosen: str
    rejected: str
    chosen_error: float
    rejected_error: float
    mu: float = 0.0


def preference_records(
    pairs: Sequence[PreferencePair], tokenizer: Any, answer_end: str = "eos", with_mu: bool = True
) -> list[dict[str, Any]]:
    """TRL preference records (prompt / chosen / rejected, formatted as the SFT answers were - see
    ``smp_llm_train.answer_records``), plus the float ``mu`` column IDPOP reads when ``with_mu``."""
    ex = [p.example for p in pairs]
    chosen = answer_records(ex, tokenizer, [p.chosen for p in pairs], answer_end)
    rejected = answer_records(ex, tokenizer, [p.rejected for p in pairs], answer_end)
    out = []
    for p, c, r in zip(pairs, chosen, rejected):
        rec = {"prompt": c["prompt"], "chosen": c["completion"], "rejected": r["completion"]}
        if with_mu:
            rec[MU_COLUMN] = float(p.mu)
        out.append(rec)
    return out


@dataclass
class PairStats:
    """What became of the sampled answer pairs (reported, so dropped data is visible)."""

    n_prompts: int = 0
    n_pairs: int = 0
    identical: int = 0
    both_failed: int = 0
    one_failed: int = 0
    tied_error: int = 0
    failed_samples: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def _clip(error: float, cap: float | None) -> float:
    return error if cap is None else min(error, cap)


def build_preference_pairs(
    examples: Sequence[Example], samples: Sequence[Sequence[str]], settings: IDPOPSettings | None = None
) -> tuple[list[PreferencePair], PairStats]:
    """Two sampled answers per prompt → (chosen, rejected) by absolute error, with μ per pair.

    Dropped: identical answers (no preference), both answers not numbers, equal errors (no order). An answer
    that is not a number is the rejected one, with error ``M_max`` of the parsed answers. W and μ use the
    alignment set's ``M_min`` / ``M_max`` (eq. 13) after clipping errors at ``settings.error_clip``.
    """
    s = settings or IDPOPSettings()
    if len(samples) != len(examples):
        raise ValueError(f"{len(samples)} sample lists for {len(examples)} examples")
    stats = PairStats(n_prompts=len(examples))
    raw: list[tuple[Example, str, str, float | None, float | None]] = []
    for ex, answers in zip(examples, samples):
        if len(answers) < 2:
            raise ValueError(f"need two sampled answers per prompt, got {len(answers)} for user {ex.uid}")
        a, b = answers[0], answers[1]
        va, vb = parse_score(a), parse_score(b)
        stats.failed_samples += (va is None) + (vb is None)
        if a == b:
            stats.identical += 1
            continue
        if va is None and vb is None:
            stats.both_failed += 1
            continue
        ea = None if va is None else _clip(abs(va - ex.target), s.error_clip)
        eb = None if vb is None else _clip(abs(vb - ex.target), s.error_clip)
        raw.append((ex, a, b, ea, eb))
    parsed = [e for r in raw for e in r[3:] if e is not None]
    if not parsed:
        return [], stats
    m_min, m_max = float(min(parsed)), float(max(parsed))
    pairs = []
    for ex, a, b, ea, eb in raw:
        if ea is None or eb is None:
            stats.one_failed += 1
        elif ea == eb:
            stats.tied_error += 1
            continue
        # a failed answer gets M_max and sorts after a parsed one with the same error
        (c, ec, _), (r, er, _) = sorted(
            [(a, m_max if ea is None else ea, ea is None), (b, m_max if eb is None else eb, eb is None)],
            key=lambda t: t[1:],
        )
        pairs.append(PreferencePair(ex, c, r, ec, er))
    stats.n_pairs = len(pairs)
    stats.extra = {"M_min": m_min, "M_max": m_max, "mu_mean": math.nan}
    if not pairs:
        return pairs, stats
    w = weight_scores(np.array([[p.chosen_error, p.rejected_error] for p in pairs]), s.alpha, m_min, m_max)
    mus = pair_mu(w[:, 0], w[:, 1], s.lam, s.delta, s.mu_max)
    for p, mu in zip(pairs, mus):
        p.mu = float(mu)
    stats.extra["mu_mean"] = float(np.mean(mus))
    return pairs, stats


# --------------------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------------------


def idpop_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    mu: torch.Tensor | float,
    beta: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 12 with per-pair μ on sequence log-probabilities ``[batch]``.

    Returns ``(loss, dpo_part, penalty)``, each ``[batch]``: ``dpo_part = -log σ(β·Δ)`` is TRL's "sigmoid"
    DPO loss; ``penalty = μ·max(0, ref_chosen - policy_chosen)`` is zero while the policy keeps the chosen
    answer at least as likely as the reference did.
    """
    delta = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    dpo_part = -F.logsigmoid(beta * delta)
    penalty = torch.as_tensor(mu, dtype=policy_chosen.dtype, device=policy_chosen.device) * torch.relu(
        ref_chosen - policy_chosen
    )
    return dpo_part + penalty, dpo_part, penalty


class MuCollator(DataCollatorForPreference):
    """TRL's preference collator that also carries the per-pair ``mu`` column as a ``[batch]`` tensor."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        out = super().torch_call(examples)
        if MU_COLUMN in examples[0]:
            out[MU_COLUMN] = torch.tensor([float(e[MU_COLUMN]) for e in examples], dtype=torch.float32)
        return out


class _Recorder:
    """Stands in for the model in ``DPOTrainer._compute_loss`` and keeps the first (policy) forward's outputs,
    whose per-token log-probs give the chosen answers' sequence log-probs for the penalty."""

    def __init__(self, model: Any):
        self._model = model
        self.outputs: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self._model(*args, **kwargs)
        if self.outputs is None:
            self.outputs = out
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class IDPOPTrainer(DPOTrainer):
    """``DPOTrainer`` + IDPOP's penalty. The dataset carries a float ``mu`` per pair.

    Three places would silently drop that column (docs/engineering.md#dpotrainer): the trainer's unused-column
    removal (so
    ``mu`` joins the signature columns), the collator (:class:`MuCollator`) and the model call (``mu`` is
    popped before ``super()._compute_loss``, which would otherwise pass it to the model's ``**kwargs``). The
    DPO part is TRL's own computation, so with μ = 0 the loss *is* TRL's sigmoid DPO loss, bit for bit.
    The reference log-probs of the chosen answers come from the precomputed column when
    ``precompute_ref_log_probs=True`` (our default) or from one extra no-grad reference forward otherwise.
    """

    def __init__(self, *args: Any, data_collator: Any = None, **kwargs: Any):
        dpo_args = kwargs.get("args")
        tokenizer = kwargs.get("processing_class")
        if data_collator is None and tokenizer is not None and dpo_args is not None:
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            data_collator = MuCollator(
                pad_token_id=pad,
                max_length=dpo_args.max_length,
                truncation_mode=dpo_args.truncation_mode,
                pad_to_multiple_of=dpo_args.pad_to_multiple_of,
            )
        super().__init__(*args, data_collator=data_collator, **kwargs)
        if self.loss_types != ["sigmoid"] or self.ld_alpha is not None:
            raise ValueError(
                "IDPOPTrainer adds its penalty to the plain sigmoid DPO loss: use loss_type='sigmoid' "
                "and ld_alpha=None"
            )

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if self._signature_columns is not None and MU_COLUMN not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, MU_COLUMN]

    def _compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> Any:
        mu = inputs.pop(MU_COLUMN, None)
        recorder = _Recorder(model)
        result = super()._compute_loss(recorder, inputs, return_outputs)
        if mu is None:
            return result
        loss = result[0] if return_outputs else result
        seq_len = inputs["completion_mask"].size(1) - 1
        logps = recorder.outputs.log_probs[:, -seq_len:].sum(dim=1)
        chosen_logps = logps.chunk(2, dim=0)[0]
        if "ref_chosen_logps" in inputs:
            ref_chosen = inputs["ref_chosen_logps"].to(chosen_logps.device)
        else:
            # TRL's own reference forward in super()._compute_loss does not go through the recorder: one more
            # no-grad forward, on the reference model when one was given (else the policy with adapters off)
            reference = model if self.ref_model is None else self.ref_model
            ref_chosen = self.compute_ref_log_probs(reference, inputs)[0].detach()
        penalty = mu.to(chosen_logps.device, chosen_logps.dtype) * torch.relu(ref_chosen - chosen_logps)
        loss = loss + penalty.mean()
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["idpop/penalty"].append(self.accelerator.gather(penalty.detach()).mean().item())
        active = (ref_chosen > chosen_logps).float()
        self._metrics[mode]["idpop/active"].append(self.accelerator.gather(active).mean().item())
        return (loss, result[1]) if return_outputs else loss


# --------------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------------


@dataclass
class PreferenceRunConfig:
    """Knobs of :func:`train_preference` (shared by DPO and IDPOP so the comparison changes only the loss)."""

    lora: LoraSettings | None = field(default_factory=LoraSettings)  # None: full fine-tuning
    loss: IDPOPSettings = field(default_factory=IDPOPSettings)
    learning_rate: float = 1e-3
    max_steps: int = 100
    batch_size: int = 16
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_length: int = 1024
    answer_end: str = "eos"  # must match the SFT run's
    seed: int = 0
    logging_steps: int = 10
    use_cpu: bool | None = None
    output_dir: str | None = None
    eval_steps: int | None = (
        None  # with eval pairs: evaluate every this many steps (None: every logging step)
    )


def split_pairs(
    pairs: Sequence[PreferencePair], held_out: float = 0.25, seed: int = 0
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train, held-out) pairs, split by *user* so no held-out prompt's user is trained on: the held-out reward
    margin and preference accuracy then measure whether the policy learned to prefer better numbers, not
    whether it memorised pairs (one user gives up to three pairs, one per shot count)."""
    users = sorted({p.example.uid for p in pairs})
    n_out = int(round(held_out * len(users)))
    if not 0 < n_out < len(users):
        raise ValueError(f"cannot hold out {held_out:.0%} of {len(users)} users' pairs")
    out = set(np.random.default_rng([seed, 2]).choice(users, size=n_out, replace=False).tolist())
    return [p for p in pairs if p.example.uid not in out], [p for p in pairs if p.example.uid in out]


EVAL_KEYS = {
    "eval_rewards/margins": "margin",
    "eval_rewards/accuracies": "accuracy",
    "eval_rewards/chosen": "chosen_reward",
    "eval_logps/chosen": "chosen_logp",
    "eval_loss": "loss",
}


def eval_curve(history: Sequence[dict[str, float]]) -> pd.DataFrame:
    """The held-out evaluations of a :func:`train_preference` run, one row per evaluation step: ``margin`` =
    mean β·(log-ratio chosen − log-ratio rejected) (DPO's implicit reward margin), ``accuracy`` = share of
    pairs with a positive margin, ``chosen_reward`` = β·log π(y_w)/π_ref(y_w) (below zero: the chosen answer
    became less likely than under the SFT model), ``chosen_logp`` and the loss (IDPOP's includes its
    penalty).

    Step 0 is read as chance: there the policy *is* the reference, so every margin is exactly 0 - a tie, which TRL
    counts as a wrong answer (accuracy 0). Plotted as 0, the curve would seem to jump from 0 to 0.6 in the first
    steps when it moved from 0.5 to 0.6; a tie counts half here."""

    rows = [
        {"step": int(h["step"]), **{v: h[k] for k, v in EVAL_KEYS.items() if k in h}}
        for h in history
        if "eval_rewards/margins" in h
    ]
    for row in rows:
        if row["step"] == 0 and row.get("margin") == 0 and row.get("accuracy") == 0:
            row["accuracy"] = 0.5
    return pd.DataFrame(rows, columns=["step", *EVAL_KEYS.values()])


def train_preference(
    sft_model: Any,
    tokenizer: Any,
    pairs: Sequence[PreferencePair],
    method: str = "idpop",
    cfg: PreferenceRunConfig | None = None,
    eval_pairs: Sequence[PreferencePair] | None = None,
    adapter_dir: str | os.PathLike | None = None,
) -> TrainResult:
    """Align a copy of the merged SFT model with DPO (``method="dpo"``) or IDPOP (``"idpop"``) and merge.

    A fresh LoRA is trained on top of the SFT weights; the reference π_ref is the SFT model (peft's adapter
    disabled), with its log-probs precomputed once. Both methods see the same pairs, seed and steps.
    ``eval_pairs`` (held-out pairs, e.g. from :func:`split_pairs`): TRL evaluates them at step 0 and every
    ``cfg.eval_steps``; the rows are in the result's ``history`` (read them with :func:`eval_curve`).
    ``adapter_dir``: the trained LoRA is also saved there before merging (``smp_llm_train.train_and_merge``).
    """
    from datasets import Dataset

    if method not in ("dpo", "idpop"):
        raise ValueError(f"method must be 'dpo' or 'idpop', got {method!r}")
    if not pairs:
        raise ValueError("no preference pairs to train on")
    cfg = cfg or PreferenceRunConfig()
    work = fresh_copy(sft_model).train()
    records = preference_records(pairs, tokenizer, cfg.answer_end, with_mu=method == "idpop")
    trainer_cls = IDPOPTrainer if method == "idpop" else DPOTrainer
    evals: dict[str, Any] = {}
    if eval_pairs:
        evals = dict(
            eval_strategy="steps",
            eval_steps=cfg.eval_steps or cfg.logging_steps,
            eval_on_start=True,
            per_device_eval_batch_size=cfg.batch_size * 2,
        )
    with tempfile.TemporaryDirectory() as tmp:
        args = DPOConfig(
            **trl_arguments(cfg, cfg.output_dir or tmp),
            **evals,
            beta=cfg.loss.beta,
            loss_type=["sigmoid"],
            precompute_ref_log_probs=True,
            dataset_num_proc=None,
        )
        eval_dataset = None
        if eval_pairs:
            eval_dataset = Dataset.from_list(
                preference_records(eval_pairs, tokenizer, cfg.answer_end, with_mu=method == "idpop")
            )
        trainer = trainer_cls(
            model=work,
            args=args,
            train_dataset=Dataset.from_list(records),
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            peft_config=None if cfg.lora is None else cfg.lora.peft_config(),
        )
        return train_and_merge(trainer, adapter_dir)
