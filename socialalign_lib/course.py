"""Run the whole course headless: build what is missing, execute every notebook, write figures.

``make course`` calls ``python -m socialalign_lib.course``. Executed copies go to ``notebooks/.executed/``
(git-ignored); the notebooks in ``notebooks/`` stay output-free. Parameters are injected into each notebook's
``parameters`` cell (papermill convention), so ``--size tiny`` runs the same notebooks at test scale.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .paths import ROOT

NOTEBOOKS_DIR = ROOT / "notebooks"
EXECUTED_DIR = NOTEBOOKS_DIR / ".executed"


def notebook_paths(only: list[str] | None = None) -> list[Path]:
    paths = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in only)]
    return paths


def execute_notebook(path: Path, parameters: dict | None = None, out_dir: Path = EXECUTED_DIR,
                     timeout: int = 1800) -> Path:
    """Execute one notebook with papermill (cwd = notebooks/) and return the executed copy's path."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / path.name
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # the kernel inherits the environment: explorers then show their static view instead of widgets (explore.py)
    before = os.environ.get("SOCIALALIGN_HEADLESS")
    os.environ["SOCIALALIGN_HEADLESS"] = "1"
    try:
        pm.execute_notebook(str(path), str(out), parameters=parameters or {}, cwd=str(path.parent),
                            kernel_name="python3", progress_bar=False, execution_timeout=timeout)
    finally:
        if before is None:
            os.environ.pop("SOCIALALIGN_HEADLESS")
        else:
            os.environ["SOCIALALIGN_HEADLESS"] = before
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default=None, help="world size injected into every notebook (default: each notebook's own)")
    ap.add_argument("--only", nargs="*", help="notebook name prefixes to run, e.g. 00 03")
    args = ap.parse_args(argv)
    params = {"size": args.size} if args.size else {}
    total = time.time()
    for path in notebook_paths(args.only):
        t = time.time()
        print(f"[course] {path.name} ...", flush=True)
        execute_notebook(path, params)
        print(f"[course] {path.name} done in {time.time() - t:.0f} s", flush=True)
    print(f"[course] all notebooks executed in {time.time() - total:.0f} s; figures in figures/", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
