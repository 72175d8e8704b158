"""Where a run keeps its generated replies: one layout for the CLI, the notebooks and the evaluation protocol.

A run folder (``socialllm.train_socialllm``'s output) holds ``replies/``; every replies file of that run lives
there, so ``socialalign generate``, :func:`socialalign_lib.evaluation.method_replies` and notebook 04 find (and
resume) each other's files. This module imports nothing from the library on purpose: the CLI, generation and
evaluation all ask it, and none of them has to import another for a path.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPLIES_DIR", "replies_dir", "replies_path"]

REPLIES_DIR = "replies"
"""Sub-folder of a run folder that holds its replies files (JSON Lines, one reply per line)."""


def replies_dir(run_dir: str | os.PathLike) -> Path:
    """``<run>/replies``: the folder of every replies file of the run in ``run_dir``."""
    return Path(run_dir) / REPLIES_DIR


def replies_path(run_dir: str | os.PathLike, split: str, variant: str, seed: int, gate_mode: str | None = None,
                 shard: int = 0, num_shards: int = 1) -> Path:
    """``<run>/replies/<split>-<variant>[-<gate_mode>]-seed<seed>[.shard<i>-of-<n>].jsonl``: one file per
    (split, prompt variant, evaluation gate mode, sampling seed), and one per shard when generation is split
    across processes (``socialalign generate --shard i --num-shards n``)."""
    name = f"{split}-{variant}" + (f"-{gate_mode}" if gate_mode else "") + f"-seed{seed}"
    if num_shards > 1:
        name += f".shard{shard}-of-{num_shards}"
    return replies_dir(run_dir) / f"{name}.jsonl"
