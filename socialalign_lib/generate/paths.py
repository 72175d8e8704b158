"""Where a run keeps its generated replies: one layout for the CLI, the notebooks and the evaluation protocol.

A run folder (``train_socialllm``'s output) holds ``replies/``; every replies file of that run lives there, so
``socialalign generate``, :func:`socialalign_lib.experiments.method_replies` and notebook 04 find (and resume) each
other's files. :func:`replies_path` is the one name of a replies file per (split, variant, gate mode, seed, shard);
:func:`generations_path` names a file of replies of any record set, by a hash of the decoding settings.

Light on purpose: it imports only the run folder's layout (``train.run_folder``), not torch, because the CLI asks it
at start-up.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from socialalign_lib.train.run_folder import REPLIES_DIR, replies_dir, sha256_json

if TYPE_CHECKING:
    from socialalign_lib.train.socialllm import TrainedSocialLLM

    from .sampling import GenerationConfig

__all__ = ["REPLIES_DIR", "generations_path", "replies_dir", "replies_path"]


def replies_path(
    run_dir: str | os.PathLike,
    split: str,
    variant: str,
    seed: int,
    gate_mode: str | None = None,
    shard: int = 0,
    num_shards: int = 1,
) -> Path:
    """``<run>/replies/<split>-<variant>[-<gate_mode>]-seed<seed>[.shard<i>-of-<n>].jsonl``: one file per
    (split, prompt variant, evaluation gate mode, sampling seed), and one per shard when generation is split
    across processes (``socialalign generate --shard i --num-shards n``)."""
    name = f"{split}-{variant}" + (f"-{gate_mode}" if gate_mode else "") + f"-seed{seed}"
    if num_shards > 1:
        name += f".shard{shard}-of-{num_shards}"
    return replies_dir(run_dir) / f"{name}.jsonl"


def generations_path(run: TrainedSocialLLM, gen: GenerationConfig, name: str) -> Path | None:
    """``<run>/replies/<name>-<hash8 of gen>.jsonl``: where ``generate_replies`` keeps (and resumes) one set of
    replies of this run, in the run's one replies folder (shared with :func:`replies_path`); None for a run
    without a folder. ``name`` says which records (e.g. ``heldout-96``); the hash of ``gen`` keeps replies sampled
    with other settings apart."""
    if run.output_dir is None:
        return None
    return replies_dir(run.output_dir) / f"{name}-{sha256_json(asdict(gen))[:8]}.jsonl"
