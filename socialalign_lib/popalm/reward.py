"""PopALM's reward model: a scalar head on the base LM, trained on like-ordered reply pairs with TRL's
``RewardTrainer``.

The loss, per batch of pairs (``r_c``, ``r_r``: the scores of the more- and the less-liked reply)::

    L = E[−log σ(r_c − r_r)]  +  0.01 · E[(r_c + r_r)²]

The first term is the Bradley–Terry pairwise loss PopALM uses. The second is *not* PopALM's: it is TRL's
reward-centring term (``RewardConfig.center_rewards_coefficient``, 0.01 by default here), which pulls the scores
towards mean zero so that they stay on one scale from run to run; set it to None for PopALM's loss exactly.
``margin_scale`` replaces the first term by ``−log σ(r_c − r_r − margin)``.

The model is ``AutoModelForSequenceClassification(num_labels=1)`` from the same checkpoint as the policy (for the
embedded Qwen2 that is ``Qwen2ForSequenceClassification``: a fresh linear ``score`` head read at the last
non-pad token). Input text = prompt + reply + eos, exactly as TRL renders an explicit-prompt pair, so training and
scoring see the same tokens. PopALM used a separate GPT-2 reading ``reply + bos + post``; the order differs, the
idea (score a reply *to this post*) does not.

:class:`RewardScorer` wraps a trained model for PPO and evaluation. Its scores are *standardised* on a reference
set of human replies (mean 0, std 1), so "reward 1.0" means one standard deviation above the average real reply
and the ROUGE bonus (in [0, 1]) and the KL penalty live on a known scale.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .data import Event, PreferencePair, pairs_dataset

__all__ = [
    "RewardConfig",
    "RewardResult",
    "load_reward_model",
    "train_reward_model",
    "RewardScorer",
    "pairwise_accuracy",
    "score_events",
    "event_pair_accuracy",
    "shuffled_accuracy_quantile",
]


@dataclass
class RewardConfig:
    """Knobs of :func:`train_reward_model`. Defaults suit the ~1M-parameter course model on CPU: full fine-tuning
    (cheaper than LoRA at this size), a high learning rate, fp32. PopALM: lr 2e-5, batch 16 × accum 4, 5–20 epochs
    on a GPT-2. ``margin_scale``: see :func:`~socialalign_lib.popalm.data.pairs_dataset` (None: plain loss).
    ``center_rewards_coefficient``: weight of TRL's centring term ``E[(r_c + r_r)²]`` added to the pairwise loss
    (0.01 here, absent in PopALM: None drops it)."""

    learning_rate: float = 5e-4
    num_train_epochs: float = 3.0
    max_steps: int = -1
    batch_size: int = 16
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    max_length: int = 256
    margin_scale: float | None = None
    center_rewards_coefficient: float | None = 0.01
    lora: Any = None  # a peft LoraConfig for large models (task_type "SEQ_CLS", modules_to_save ["score"])
    seed: int = 0
    logging_steps: int = 10
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RewardResult:
    model: Any
    history: list[dict[str, float]]
    seconds: float


def load_reward_model(name_or_path: Any, tokenizer: Any, *, device: str = "cpu", seed: int = 0) -> Any:
    """A fresh ``AutoModelForSequenceClassification`` with one output from a causal-LM checkpoint (its ``score``
    head is new and seeded by ``seed``; the LM head is dropped), with ``pad_token_id`` set so the head reads the
    last real token."""
    from transformers import AutoModelForSequenceClassification, set_seed
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    set_seed(seed)
    with suppress_seqcls_warning():
        model = AutoModelForSequenceClassification.from_pretrained(
            str(name_or_path), num_labels=1, dtype=torch.float32, device_map={"": device}
        )
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def train_reward_model(
    model: Any, tokenizer: Any, train_pairs: Sequence[PreferencePair], cfg: RewardConfig | None = None
) -> RewardResult:
    """Train ``model`` (a ``num_labels=1`` sequence classifier, e.g. from :func:`load_reward_model`) on
    ``train_pairs`` with TRL's ``RewardTrainer``; return it in eval mode with the logged history (loss, train
    accuracy, margin per logging step). Pairs longer than ``max_length`` tokens are dropped by TRL."""
    from transformers.trainer_callback import PrinterCallback
    from trl import RewardConfig as TRLRewardConfig
    from trl import RewardTrainer

    cfg = cfg or RewardConfig()
    if not train_pairs:
        raise ValueError("no training pairs")
    with tempfile.TemporaryDirectory() as tmp:
        args = TRLRewardConfig(
            output_dir=tmp,
            learning_rate=cfg.learning_rate,
            num_train_epochs=cfg.num_train_epochs,
            max_steps=cfg.max_steps,
            per_device_train_batch_size=cfg.batch_size,
            weight_decay=cfg.weight_decay,
            warmup_steps=cfg.warmup_ratio,
            lr_scheduler_type="cosine",
            logging_steps=cfg.logging_steps,
            save_strategy="no",
            report_to="none",
            bf16=False,
            fp16=False,
            use_cpu=not torch.cuda.is_available(),
            activation_checkpointing=False,
            seed=cfg.seed,
            data_seed=cfg.seed,
            dataloader_num_workers=0,
            max_length=cfg.max_length,
            center_rewards_coefficient=cfg.center_rewards_coefficient,
            disable_tqdm=True,
            **cfg.extra,
        )
        trainer = RewardTrainer(
            model=model,
            args=args,
            train_dataset=pairs_dataset(train_pairs, cfg.margin_scale),
            processing_class=tokenizer,
            peft_config=cfg.lora,
        )
        trainer.remove_callback(
            PrinterCallback
        )  # the history is returned; no dict per logging step on stdout
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    history = [h for h in trainer.state.log_history if "loss" in h]
    return RewardResult(trainer.model.eval(), history, seconds)


class RewardScorer:
    """Scores (prompt, reply) texts with a trained reward model, batched, without gradients.

    ``scorer(prompts, replies)`` → standardised scores ``(raw − mean) / std`` as a float32 array ``[n]``, once
    :meth:`fit_normaliser` has seen reference replies (before that, raw scores).
    """

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 64, max_length: int = 256):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self.mean, self.std = 0.0, 1.0

    @torch.no_grad()
    def raw(self, prompts: Sequence[str], replies: Sequence[str]) -> np.ndarray:
        """Unnormalised head outputs ``[n]``; text = prompt + reply + eos as in training (right-padded; the head
        reads the last non-pad token)."""
        if len(prompts) != len(replies):
            raise ValueError(f"{len(prompts)} prompts but {len(replies)} replies")
        tok, device = self.tokenizer, next(self.model.parameters()).device
        texts = [p + r + tok.eos_token for p, r in zip(prompts, replies)]
        out = np.empty(len(texts), dtype=np.float32)
        was_side = tok.padding_side
        tok.padding_side = "right"
        try:
            for s in range(0, len(texts), self.batch_size):
                enc = tok(
                    texts[s : s + self.batch_size],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    add_special_tokens=False,
                ).to(device)
                out[s : s + self.batch_size] = self.model(**enc).logits.squeeze(-1).float().cpu().numpy()
        finally:
            tok.padding_side = was_side
        return out

    def fit_normaliser(self, prompts: Sequence[str], replies: Sequence[str]) -> RewardScorer:
        """Set mean/std from reference (human) replies; returns ``self``."""
        raw = self.raw(prompts, replies)
        self.mean, self.std = float(raw.mean()), float(raw.std() + 1e-6)
        return self

    def __call__(self, prompts: Sequence[str], replies: Sequence[str]) -> np.ndarray:
        return (self.raw(prompts, replies) - self.mean) / self.std


def pairwise_accuracy(scorer: RewardScorer, pairs: Sequence[PreferencePair]) -> float:
    """Share of pairs whose more-liked reply scores higher (a tie counts one half). Chance is 0.5."""
    if not pairs:
        raise ValueError("no pairs to score")
    c = scorer.raw([p.prompt for p in pairs], [p.chosen for p in pairs])
    r = scorer.raw([p.prompt for p in pairs], [p.rejected for p in pairs])
    return float(np.mean((c > r) + 0.5 * (c == r)))


def score_events(scorer: RewardScorer, events: Sequence[Event]) -> list[np.ndarray]:
    """Raw reward-model scores of every reply of every event (in each event's like order)."""
    flat = [(e.prompt, r) for e in events for r in e.replies]
    raw = scorer.raw([p for p, _ in flat], [r for _, r in flat])
    bounds = np.cumsum([0] + [len(e.replies) for e in events])
    return [raw[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def event_pair_accuracy(
    scores: Sequence[np.ndarray], likes: Sequence[Sequence[int]], min_margin: float = 0.0
) -> float:
    """Pairwise accuracy from per-reply scores: over all within-event pairs whose ``log1p(likes)`` differ by more
    than ``min_margin``, the share where the more-liked reply scores higher (ties one half). Equals
    :func:`pairwise_accuracy` on ``build_pairs(events, min_margin)``, with each reply scored once."""
    hits, n = 0.0, 0
    for s, lk in zip(scores, likes):
        s, logl = np.asarray(s, dtype=float), np.log1p(np.asarray(lk, dtype=float))
        dl = logl[:, None] - logl[None, :]
        ds = s[:, None] - s[None, :]
        pairs = dl > min_margin
        hits += float((ds[pairs] > 0).sum() + 0.5 * (ds[pairs] == 0).sum())
        n += int(pairs.sum())
    if n == 0:
        raise ValueError("no pairs with a like margin above min_margin")
    return hits / n


def shuffled_accuracy_quantile(
    scores: Sequence[np.ndarray],
    likes: Sequence[Sequence[int]],
    q: float = 0.95,
    n_shuffles: int = 1000,
    min_margin: float = 0.0,
    seed: int = 0,
) -> float:
    """The ``q`` quantile of :func:`event_pair_accuracy` when each event's scores are randomly permuted among its
    replies: what a reward model with *no* signal reaches by luck on these events. Pairs of one event share
    replies and are not independent, so a binomial test over pairs would be overconfident; the permutation keeps
    that structure. An accuracy above this quantile is better than chance at level ``1 − q``."""
    rng = np.random.default_rng(seed)
    accs = [
        event_pair_accuracy([rng.permutation(s) for s in scores], likes, min_margin)
        for _ in range(n_shuffles)
    ]
    return float(np.quantile(accs, q))
