"""Experiments: the course run for a method — train (or load) its model, then generate its replies — and the
protocol of notebooks 05–06 (which methods, on which cases, trained and sampled the same way). Formerly
``evaluation.py``: it runs experiments; the measures are in ``metrics``, ``divergence`` and ``macro``.

Every LLM row of the results table is a :class:`MethodSpec` — a training method (``base`` / ``lora`` /
``pac_lora``), the prompt variant it is trained *and* evaluated on, and an evaluation-time gate mode — run through
one function, :func:`method_replies`: train (or load the finished run with the same config, so notebook 03's
runs are reused), then generate one reply per evaluation case with the same
:class:`~socialalign_lib.generate.sampling.GenerationConfig`,
resuming from the replies file of that run. Nothing differs between methods but the spec.

:func:`evaluation_cases` fixes the cases once for all methods: per split, per topic, at most ``max_per_topic``
users (a seeded draw) and topics with at least ``min_per_topic`` users (a 1-reply "crowd" has no distribution
worth comparing). The same case ids are then looked up in each prompt variant, so the ablations answer exactly
the same (user, topic) pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from socialalign_lib.build.records.template import official_inference_ablation

from .generate.decode import generate_replies
from .generate.paths import replies_path  # re-exported: the evaluation protocol's replies live there
from .generate.sampling import GenerationConfig
from .train.config import SocialLLMConfig, course_sft_config
from .train.run_folder import default_output_dir
from .train.socialllm import train_socialllm

__all__ = [
    "OFFICIAL_TABLE_METHODS",
    "TABLE_METHODS",
    "MethodSpec",
    "assign_splits",
    "evaluation_cases",
    "histories",
    "method_replies",
    "replies_path",
    "sft_for_size",
]


@dataclass(frozen=True)
class MethodSpec:
    """One row of the results table. ``variant``: prompt variant for training and evaluation (our ablations
    without persona / history are separate trainings). ``gate_mode``: PAC-LoRA gates at evaluation
    (``"uniform"`` = the averaged-gates ablation of the trained PAC-LoRA model, no extra training).
    ``remove_at_inference``: ``"history"`` or ``"persona"``: the official ablation protocol, the model trained on
    ``variant`` asked with that part cut from each prompt (``records.official_inference_ablation``)."""

    name: str
    method: str
    variant: str = "full"
    gate_mode: str | None = None
    remove_at_inference: str | None = None


TABLE_METHODS: tuple[MethodSpec, ...] = (
    MethodSpec("base (zero-shot)", "base"),
    MethodSpec("LoRA", "lora"),
    MethodSpec("PAC-LoRA", "pac_lora"),
    MethodSpec("PAC-LoRA w/o persona", "pac_lora", "without_persona"),
    MethodSpec("PAC-LoRA w/o history", "pac_lora", "without_history"),
    MethodSpec("PAC-LoRA uniform gates", "pac_lora", gate_mode="uniform"),
)
"""The LLM rows of the paper-style table, in order (the category prior and the oracle need no model). This is
*our* ablation protocol, the one notebooks 05-06 report: "w/o persona" and "w/o history" are models trained and
evaluated on those prompt variants. See :data:`OFFICIAL_TABLE_METHODS` for the official one."""

OFFICIAL_TABLE_METHODS: tuple[MethodSpec, ...] = tuple(
    MethodSpec("PAC-LoRA w/o history", "pac_lora", remove_at_inference="history")
    if spec.variant == "without_history"
    else spec
    for spec in TABLE_METHODS
)
"""The official ablation protocol: "w/o persona" is trained and evaluated without the persona (as ours), but
"w/o history" is the full PAC-LoRA model asked with the history removed at inference. (The official protocol also
writes one persona per (user, topic) from that news' five retrieved posts: ``pipeline.CourseDataConfig(
persona_protocol="user_topic")`` / ``persona.personas_per_topic``; ours writes one persona per user.)"""


def sft_for_size(size: str, seed: int = 0, max_steps: int | None = None, **overrides: Any):
    """Training knobs by world size: ``train.config.course_sft_config`` (the run notebook 03 trains, reused here) with
    the run's ``seed``; ``tiny`` (tests, CI) trains 8 steps, enough to exercise the path, not to learn much.
    ``max_steps`` overrides both."""
    steps = max_steps if max_steps is not None else (8 if size == "tiny" else None)
    return course_sft_config(seed=seed, **({"max_steps": steps} if steps is not None else {}), **overrides)


def evaluation_cases(
    dataset: Mapping[str, Any],
    splits: Sequence[str] = ("test_user", "test_topic"),
    max_per_topic: int | None = None,
    min_per_topic: int = 1,
    seed: int = 0,
) -> dict[str, list[str]]:
    """Case ids to evaluate, per split: for each topic of the split, all its ``full``-variant cases, or a seeded
    random ``max_per_topic`` of them; topics with fewer than ``min_per_topic`` cases are left out. Ids are
    returned in the dataset's order."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {}
    for split in splits:
        ds = dataset[split]
        frame = pd.DataFrame({"case_id": ds["case_id"], "topic_id": ds["topic_id"], "variant": ds["variant"]})
        frame = frame[frame["variant"] == "full"]
        keep: set[str] = set()
        for _, group in frame.groupby("topic_id", sort=True):
            if len(group) < min_per_topic:
                continue
            ids = group["case_id"].to_numpy()
            if max_per_topic is not None and len(ids) > max_per_topic:
                ids = rng.choice(ids, size=max_per_topic, replace=False)
            keep.update(ids.tolist())
        out[split] = [c for c in frame["case_id"] if c in keep]
        if not out[split]:
            raise ValueError(f"evaluation_cases: split {split!r} has no topic with >= {min_per_topic} cases")
    return out


def histories(world: Any) -> dict[str, list[str]]:
    """``user_id → the user's own history texts`` (a repost's comment, not the reposted text): what persona
    consistency compares a reply with."""
    return {u.user_id: [p.text for p in u.history] for u in world.users}


def method_replies(
    spec: MethodSpec,
    dataset: Mapping[str, Any],
    cases: Mapping[str, Sequence[str]],
    *,
    data_name: str,
    seed: int = 0,
    base_model: str | None = None,
    load_in_4bit: bool = False,
    device: str = "auto",
    sft: Any = None,
    gen: Any = None,
    progress: bool = True,
    run_dir: str | Path | None = None,
    retrain: bool = False,
) -> tuple[Any, pd.DataFrame]:
    """Train (or load) ``spec``'s model on ``dataset["train"]`` and generate a reply for every case in ``cases``
    (split → case ids, from :func:`evaluation_cases`) in ``spec.variant``; returns ``(run, replies)``.

    The run folder is ``train.run_folder.default_output_dir(cfg, data_name, seed)`` unless ``run_dir`` is given (e.g. a
    temporary folder in tests); replies are appended to :func:`replies_path` files inside it and read back on a
    re-run. ``sft`` defaults to :func:`sft_for_size` (``data_name`` as the size), ``gen`` to the official sampling
    with seed ``seed``. The committed run (``data/checkpoints``, ``make checkpoints``) is loaded when there is one;
    ``retrain=True`` trains a fresh copy under ``outputs/`` instead.
    """
    kw: dict[str, Any] = {
        "method": spec.method,
        "variant": spec.variant,
        "load_in_4bit": load_in_4bit,
        "device": device,
        "sft": sft if sft is not None else sft_for_size(data_name, seed),
    }
    if base_model is not None:
        kw["base_model"] = str(base_model)
    cfg = SocialLLMConfig(**kw)
    gen = gen if gen is not None else GenerationConfig(seed=seed)
    out_dir = (
        Path(run_dir)
        if run_dir is not None
        else default_output_dir(cfg, data_name, seed, committed=not retrain)
    )
    run = train_socialllm(cfg, dataset["train"], out_dir, progress=progress)
    frames = []
    for split, ids in cases.items():
        wanted = set(ids)
        records = dataset[split].filter(
            lambda c, v, wanted=wanted: v == spec.variant and c in wanted,
            input_columns=["case_id", "variant"],
        )
        if len(records) != len(wanted):
            raise ValueError(
                f"{spec.name}: split {split!r} has {len(records)} {spec.variant!r} records for "
                f"{len(wanted)} case ids"
            )
        variant = spec.variant
        if spec.remove_at_inference is not None:
            records = [official_inference_ablation(r, spec.remove_at_inference) for r in records]
            variant = records[0]["variant"] if records else variant
        path = replies_path(out_dir, split, variant, gen.seed, spec.gate_mode)
        path.parent.mkdir(parents=True, exist_ok=True)
        frames.append(
            generate_replies(
                run.model,
                run.tokenizer,
                records,
                gen,
                out_path=path,
                progress=progress,
                gate_mode=spec.gate_mode,
            )
        )
    replies = pd.concat(frames, ignore_index=True)
    replies.insert(0, "method", spec.name)
    return run, replies


def assign_splits(
    cases: Sequence[Any],
    heldout_topic_frac: float = 0.2,
    heldout_user_frac: float = 0.15,
    validation_frac: float = 0.08,
    seed: int = 0,
) -> list[Any]:
    """Give real cases (``loaders.load_socialalign_cases``, ``load_lamp`` …) the world's five splits by the world's
    rule: a seeded ``heldout_topic_frac`` of topics and ``heldout_user_frac`` of users are held out; a case is
    ``test_both`` (both held out), ``test_topic``, ``test_user``, else ``train`` — of which a seeded
    ``validation_frac`` becomes ``validation``. Returns new cases (the input is not modified)."""
    rng = np.random.default_rng(seed)
    topics = sorted({c.topic.topic_id for c in cases})
    users = sorted({c.user.user_id for c in cases})
    held_t = set(
        rng.choice(topics, size=int(round(heldout_topic_frac * len(topics))), replace=False).tolist()
    )
    held_u = set(rng.choice(users, size=int(round(heldout_user_frac * len(users))), replace=False).tolist())
    out = []
    for c in cases:
        t_out, u_out = c.topic.topic_id in held_t, c.user.user_id in held_u
        split = ("test_both" if u_out else "test_topic") if t_out else ("test_user" if u_out else "train")
        if split == "train" and rng.random() < validation_frac:
            split = "validation"
        out.append(replace(c, split=split))
    return out
