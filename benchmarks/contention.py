"""Slowdown of one course notebook beside a CPU hog: does the course survive a busy machine?

Why: on the shared 2-core machine, `make course` once took 65 min instead of 15 and then failed on a cell
timeout, because OpenMP threads spin while they wait and a spinning thread steals its partner's core. The
library now makes them wait passively (`socialalign_lib/runtime.py`); this benchmark checks the effect where
it matters, on a real notebook: run it alone, then again beside `hogs` busy processes (one per core by
default, i.e. a load average of 2 added on 2 cores), and report busy/alone (target <= 2: a fair share of
the cores, not a collapse). The notebook writes into a temporary folder, not `figures/`.

The two runs are sequential (minutes each), so drift of the machine between them is not cancelled as in the
interleaved micro-benchmarks; the row's notes give the load average around each run.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

from socialalign_lib.course import execute_notebook, notebook_paths

from .common import Result

SLOWDOWN_TARGET = 2.0
#: A short but representative run: NARRATOR (notebook 09) trains a small attention network with torch at
#: course size, one seed (the notebook that hit the cell timeout on the busy machine), with its own threads setting.
DEFAULT_NOTEBOOK = "09"
DEFAULT_PARAMETERS: dict = {"seeds": [0]}


def _spin(deadline: float) -> None:
    """A CPU hog that stops by itself at ``deadline`` (time.time()), even if its parent dies.

    It starts its own session, as a job from another terminal would: Linux's autogroup scheduler shares the CPU
    fairly between *sessions*, and the notebook kernel runs in a session of its own, so hogs left in this process's
    session would share one fair slice between them and barely touch the kernel (measured: 1.03x)."""
    if hasattr(os, "setsid"):
        with contextlib.suppress(OSError):  # already a session leader
            os.setsid()
    x = 0
    while time.time() < deadline:
        x += 1


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def time_notebook(path: Path, parameters: dict, workdir: Path) -> float:
    """Seconds to execute ``path`` headless with ``parameters``; figures and the executed copy go to ``workdir``."""
    start = time.perf_counter()
    execute_notebook(path, {**parameters, "figures_dir": str(workdir / "figures")}, out_dir=workdir)
    return time.perf_counter() - start


def bench_contention(
    label: str,
    notebook: str | Path = DEFAULT_NOTEBOOK,
    parameters: dict | None = None,
    hogs: int | None = None,
) -> list[Result]:
    """One row: busy/alone wall time of ``notebook`` (a course notebook's prefix, or a path) beside ``hogs``
    spinning processes (default: one per core)."""
    if isinstance(notebook, Path):
        path = notebook
    else:
        paths = notebook_paths([notebook])
        if len(paths) != 1:
            raise ValueError(f"notebook prefix {notebook!r} matches {len(paths)} notebooks")
        path = paths[0]
    params = DEFAULT_PARAMETERS if parameters is None else parameters
    hogs = hogs or os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        load_before = _load()
        alone = time_notebook(path, params, Path(tmp) / "alone")
        load_between = _load()
        deadline = time.time() + 6 * alone + 120
        procs = [
            mp.get_context("spawn").Process(target=_spin, args=(deadline,), daemon=True) for _ in range(hogs)
        ]
        for proc in procs:
            proc.start()
        try:
            busy = time_notebook(path, params, Path(tmp) / "busy")
        finally:
            for proc in procs:
                proc.terminate()
                proc.join(timeout=10)
    ratio = busy / alone
    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    return [
        Result(
            "contention",
            f"notebook_{path.name[:2]}_slowdown[{hogs} hogs]",
            ratio,
            "x",
            f"<= {SLOWDOWN_TARGET:g}",
            ratio <= SLOWDOWN_TARGET,
            label,
            f"{path.name} {params}: alone {alone:.0f} s, beside {hogs} spinning processes {busy:.0f} s; "
            f"OMP_WAIT_POLICY={policy}; load average {load_before} before, {load_between} between",
        )
    ]
