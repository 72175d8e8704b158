"""Wall time of `make course` (`python -m socialalign_lib.course`) and `make test` (`pytest -q`), opt-in.

Both take minutes, so `benchmarks.run` runs them only with `--course-time` / `--test-time`. They run
as child processes of the same interpreter (the environment is already installed, as the targets
assume), with the thread settings those commands choose themselves.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence

from socialalign_lib.paths import ROOT

from .common import Result

COURSE_TARGET_S = 15 * 60
TEST_TARGET_S = 10 * 60


def timed_command(args: Sequence[str], timeout_s: float) -> tuple[float, int, str]:
    """Run `args` in the repository root; returns (seconds, exit status, last output line)."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            list(args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, -1, f"killed after {timeout_s:.0f} s"
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return time.perf_counter() - start, proc.returncode, lines[-1] if lines else ""


def bench_wall_time(label: str, course: bool, tests: bool) -> list[Result]:
    """Rows `course_wall_time` (target <= 15 min) and/or `test_wall_time` (target <= 10 min)."""
    jobs = []
    if course:
        jobs.append(("course_wall_time", [sys.executable, "-m", "socialalign_lib.course"], COURSE_TARGET_S))
    if tests:
        jobs.append(
            (
                "test_wall_time",
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                TEST_TARGET_S,
            )
        )
    results = []
    for figure, args, target in jobs:
        seconds, status, last = timed_command(args, timeout_s=4 * target)
        results.append(
            Result(
                "wall_time",
                figure,
                seconds,
                "s",
                f"<= {target}",
                status == 0 and seconds <= target,
                label,
                f"`{' '.join(args[1:])}` exit {status}: {last}",
            )
        )
    return results
