"""What every ``socialalign`` command shares: the ``run`` option group (threads, progress bars, verbosity), the
process set-up around a command, the error a command raises for bad inputs, and its one-line JSON summary."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class CommandError(RuntimeError):
    """A command cannot run with the given inputs (the message names the file or option)."""


@dataclass
class RunOptions:
    """Options every command shares."""

    threads: int | None = (
        None  # torch CPU threads (None: torch's default); 1 keeps runs bit-reproducible across machines
    )
    progress: bool = True  # tqdm progress bars
    verbose: bool = False  # log at INFO level, and show the traceback of an error (-v)


@contextmanager
def _setup(run: RunOptions) -> Iterator[None]:
    """Logging for our own loggers only (third-party libraries keep theirs: bm25s logs every index at DEBUG),
    torch threads, and progress bars off everywhere with ``--no-progress`` (tqdm, datasets); the process-wide
    switches are put back afterwards, so ``main`` can be called in-process (tests, notebooks)."""
    env = {
        k: os.environ.get(k) for k in ("HF_HUB_DISABLE_TELEMETRY", "TOKENIZERS_PARALLELISM", "TQDM_DISABLE")
    }
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in ("socialalign_lib", "socialalign"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO if run.verbose else logging.WARNING)
        if not logger.handlers:
            logger.addHandler(handler)
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    threads = None
    if run.threads:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(run.threads)
    bars = None
    if not run.progress:
        os.environ["TQDM_DISABLE"] = "1"  # tqdm >= 4.66 reads TQDM_* defaults from the environment
        import datasets
        from transformers.utils import logging as hf_logging

        bars = (datasets.is_progress_bar_enabled(), hf_logging.is_progress_bar_enabled())
        datasets.disable_progress_bars()
        hf_logging.disable_progress_bar()  # "Loading weights" and the Trainer's bar
    try:
        yield
    finally:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        if bars is not None:
            import datasets
            from transformers.utils import logging as hf_logging

            if bars[0]:
                datasets.enable_progress_bars()
            if bars[1]:
                hf_logging.enable_progress_bar()


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _emit(summary: dict[str, Any]) -> None:
    """The command's result as one JSON line on stdout (rank 0 only), for scripts and logs."""
    if _is_main_process():
        print(json.dumps(summary, ensure_ascii=False, default=str))


def _outputs_dir() -> Path:
    from socialalign_lib.paths import OUTPUTS_DIR

    return OUTPUTS_DIR
