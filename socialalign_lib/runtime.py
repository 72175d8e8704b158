"""Process-wide settings for running the course on a small, shared CPU — set once, on import of the library.

Two things, both decided here and nowhere else:

* **OpenMP waits passively.** torch's CPU kernels run on OpenMP threads that, by default, *spin* while
  they wait at a barrier. On a 2-core machine that other jobs also use, a spinning thread steals the core
  its partner needs to reach the barrier, and a notebook that takes 4 minutes alone took 23 (load 3-6).
  ``OMP_WAIT_POLICY=PASSIVE`` makes waiting threads sleep: a few percent slower on an idle machine, and
  it degrades with the load instead of collapsing (``make bench`` measures the slowdown of a course
  notebook beside a CPU hog: ``benchmarks/contention.py``). OpenMP reads the variable once, when torch
  is first imported, so it is set as a *default* (a user's own value wins) before anything imports torch:
  by ``import socialalign_lib``, by the Makefile for every command, and in the environment of each
  notebook kernel that ``course.py`` starts.
* **No optional-kernel chatter.** bitsandbytes (imported by peft) tries, on every import, to fetch an
  optional faster CPU 4-bit kernel from the Hugging Face Hub and warns when it cannot — on every import
  offline, i.e. in every notebook and CLI call here. bitsandbytes then uses its own built-in kernel, so
  nothing is wrong: the warning is moved to DEBUG on this library's logger (``-v`` shows it). Any other
  bitsandbytes message, including a failure to load its native library, passes unchanged.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping

log = logging.getLogger("socialalign_lib.runtime")

#: Environment defaults for every process of the course (a value already set is kept).
CPU_ENV_DEFAULTS: dict[str, str] = {
    "OMP_WAIT_POLICY": "PASSIVE",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}

_OPTIONAL_KERNEL_LOGGERS = ("bitsandbytes.backends.cpu.ops", "kernels._internals.hf_hub")
_OPTIONAL_KERNEL_MESSAGES = (
    "Failed to load CPU gemm_4bit_forward from kernels-community",
    "Skipping publisher trust check for 'kernels-community/",
)


def cpu_environment(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default ``os.environ``) with :data:`CPU_ENV_DEFAULTS` filled in where unset, as a copy —
    for the environment of a child process (a notebook kernel, a benchmark's subprocess)."""
    env = dict(os.environ if environ is None else environ)
    for key, value in CPU_ENV_DEFAULTS.items():
        env.setdefault(key, value)
    return env


def apply_cpu_defaults() -> bool:
    """Fill :data:`CPU_ENV_DEFAULTS` into this process's environment. Returns False when torch was already
    imported, so OpenMP has read its wait policy before we could set it (then the policy of this process is
    whatever the caller's environment said; set ``OMP_WAIT_POLICY`` before starting Python to change it)."""
    for key, value in CPU_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    return "torch" not in sys.modules


class _OptionalKernelFilter(logging.Filter):
    """Moves the "optional Hub kernel not available" warnings of bitsandbytes / kernels to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(message.startswith(m) for m in _OPTIONAL_KERNEL_MESSAGES):
            log.debug("optional bitsandbytes CPU kernel not loaded (built-in kernel used): %s", message)
            return False
        return True


_FILTER = _OptionalKernelFilter()


def quiet_optional_kernels() -> None:
    """Install the filter on the two loggers (idempotent; they need not exist yet — getLogger creates them,
    and the libraries pick up the same objects when they are imported later)."""
    for name in _OPTIONAL_KERNEL_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def configure() -> None:
    """Everything above; called by ``socialalign_lib/__init__.py``."""
    apply_cpu_defaults()
    quiet_optional_kernels()


def set_threads(n: int | None) -> None:
    """Pin torch's CPU threads for this process (the course machines have 2 shared cores); None keeps the
    default. With passive OpenMP waits (above) 2 threads degrade gracefully beside other work; 1 thread has no
    barrier at all and is as fast for the embedded ~1M-parameter model."""
    if n:
        import torch

        torch.set_num_threads(n)
        os.environ.setdefault("OMP_NUM_THREADS", str(n))
