"""Run the whole course headless: build what is missing, execute every notebook, write figures.

``make course`` calls ``python -m socialalign_lib.course``. Executed copies, with their outputs, go to
``notebooks/executed/`` (committed from the same run that writes ``figures/``, so a reader on the web sees every
result; ``tests/test_executed_notebooks.py`` fails when a copy's code no longer matches its notebook); the
notebooks in ``notebooks/`` stay output-free. Beside each copy, ``NN_summary.json`` holds the key numbers its
"what you should see" cells showed (``reference.py``): the reference the next reader's run is compared with.
Parameters are injected into each notebook's
``parameters`` cell (papermill convention), so ``--size tiny`` runs the same notebooks at test scale.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from .paths import FIGURES_DIR, ROOT
from .reference import SUMMARY_DIR_ENV

NOTEBOOKS_DIR = ROOT / "notebooks"
EXECUTED_DIR = NOTEBOOKS_DIR / "executed"
RUNTIMES_CSV = FIGURES_DIR / "course_runtimes.csv"


def notebook_paths(only: list[str] | None = None) -> list[Path]:
    paths = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in only)]
    return paths


class NotebookRunError(RuntimeError):
    """A course notebook failed or timed out; the message names the notebook, the cell and its first line."""


def _timed_out_cell(path: Path, message: str) -> tuple[int, str] | None:
    """Index (in the source notebook) and first line of the cell whose source nbclient quotes in ``message``.

    nbclient's timeout error carries a preview of the cell's source but not its index."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        lines = [line for line in cell.source.strip().splitlines() if line.strip()]
        if cell.cell_type == "code" and lines and all(line in message for line in lines[:3]):
            return index, lines[0]
    return None


def execute_notebook(
    path: Path, parameters: dict | None = None, out_dir: Path = EXECUTED_DIR, timeout: int | None = None
) -> Path:
    """Execute one notebook with papermill (cwd = notebooks/) and return the executed copy's path.

    ``timeout``: seconds per cell (default ``$SOCIALALIGN_CELL_TIMEOUT`` or 1800). A failing or timed-out cell
    raises :class:`NotebookRunError` naming the notebook and the cell; the partly executed copy is kept.
    The kernel inherits this process's environment, so it gets the library's CPU defaults (``runtime.py``:
    passive OpenMP waits) before it imports torch.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    timeout = timeout or int(os.environ.get("SOCIALALIGN_CELL_TIMEOUT", 1800))
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / path.name
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # the kernel inherits the environment: explorers then show their static view instead of widgets (explore.py),
    # and "what you should see" cells record their numbers next to the executed copy (reference.py)
    saved = {name: os.environ.get(name) for name in ("SOCIALALIGN_HEADLESS", SUMMARY_DIR_ENV)}
    os.environ["SOCIALALIGN_HEADLESS"] = "1"
    os.environ[SUMMARY_DIR_ENV] = str(out_dir)
    try:
        pm.execute_notebook(
            str(path),
            str(out),
            parameters=parameters or {},
            cwd=str(path.parent),
            kernel_name="python3",
            progress_bar=False,
            execution_timeout=timeout,
        )
    except PapermillExecutionError as exc:
        first = (exc.source.strip().splitlines() or [""])[0]
        raise NotebookRunError(
            f"{path.name}: cell {exc.cell_index} ({first!r}) raised {exc.ename}: {exc.evalue} "
            f"(executed copy: {out})"
        ) from exc
    except TimeoutError as exc:  # nbclient's CellTimeoutError: its message quotes the cell, not its index
        where = _timed_out_cell(path, str(exc))
        cell = f"cell {where[0]} ({where[1]!r})" if where else "a cell"
        raise NotebookRunError(
            f"{path.name}: {cell} timed out after {timeout} s (SOCIALALIGN_CELL_TIMEOUT "
            f"raises the limit; executed copy: {out})"
        ) from exc
    except RuntimeError as exc:  # e.g. nbclient's DeadKernelError (out of memory)
        raise NotebookRunError(f"{path.name}: {type(exc).__name__}: {exc}") from exc
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return out


def record_runtime(notebook: str, seconds: float, size: str, path: Path = RUNTIMES_CSV) -> None:
    """Update ``notebook``'s row of the runtime table (README and each notebook's header quote it): seconds, the
    world size, the machine's cores and 1-minute load average at the end (a busy machine runs slower)."""
    import csv

    from socialalign_lib.data.write import write_text

    rows = {}
    if path.exists():
        with path.open(encoding="utf-8", newline="") as handle:
            rows = {r["notebook"]: r for r in csv.DictReader(handle)}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows[notebook] = {
        "notebook": notebook,
        "seconds": f"{seconds:.0f}",
        "size": size,
        "cores": str(os.cpu_count()),
        "load_average": f"{load:.1f}",
        "date": time.strftime("%Y-%m-%d"),
    }
    fields = ["notebook", "seconds", "size", "cores", "load_average", "date"]
    lines = [",".join(fields)] + [",".join(rows[k][f] for f in fields) for k in sorted(rows)]
    write_text(path, "\n".join(lines) + "\n")


#: The runtime line under each notebook's title (its cell id ``sa-runtime``) and the README's runtime table rows.
RUNTIME_CELL_ID = "sa-runtime"
_RUNTIME_LINE = re.compile(r"\*\*Runtime: \d+ s\*\* on \d+ CPU cores")
_README_TOTAL = re.compile(r"\| \*\*all\*\* \(`make course`\) \| \*\*\d+\*\* \([\d.]+ min\) \|")


def read_runtimes(path: Path = RUNTIMES_CSV) -> dict[str, dict[str, str]]:
    """``figures/course_runtimes.csv`` as ``{notebook stem: row}``."""
    import csv

    with path.open(encoding="utf-8", newline="") as handle:
        return {r["notebook"]: r for r in csv.DictReader(handle)}


def sync_runtimes(
    path: Path = RUNTIMES_CSV, notebooks_dir: Path = NOTEBOOKS_DIR, readme: Path = ROOT / "README.md"
) -> list[Path]:
    """Quote the measured course-size runtimes where readers look: the runtime line under each notebook's title
    and the README's runtime table (its total too). Only the numbers change; returns the files rewritten.
    ``make course`` calls it after a full run, so the quotes never drift from the CSV."""
    import nbformat

    from socialalign_lib.data.write import write_text

    rows = {k: r for k, r in read_runtimes(path).items() if r["size"] == "course"}
    changed = []
    for nb_path in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb")):
        row = rows.get(nb_path.stem)
        if row is None:
            continue
        nb = nbformat.read(nb_path, as_version=4)
        line = f"**Runtime: {row['seconds']} s** on {row['cores']} CPU cores"
        cells = [c for c in nb.cells if c.get("id") == RUNTIME_CELL_ID and _RUNTIME_LINE.search(c.source)]
        if cells and _RUNTIME_LINE.search(cells[0].source).group(0) != line:
            cells[0].source = _RUNTIME_LINE.sub(line, cells[0].source, count=1)
            nbformat.write(nb, nb_path)
            changed.append(nb_path)
    if readme.exists() and rows:
        text = old = readme.read_text(encoding="utf-8")
        for stem, row in rows.items():
            text = re.sub(rf"(\| `{re.escape(stem)}` \| )\d+( \|)", rf"\g<1>{row['seconds']}\g<2>", text)
        total = sum(int(r["seconds"]) for r in rows.values())
        text = _README_TOTAL.sub(f"| **all** (`make course`) | **{total}** ({total / 60:.1f} min) |", text)
        if text != old:
            write_text(readme, text)
            changed.append(readme)
    return changed


RESULTS_BEGIN = "<!-- results:begin (written by `make course`: socialalign_lib.course.sync_results) -->"
RESULTS_END = "<!-- results:end -->"
_HEADLINE = (("test_user", "sent_acc"), ("test_topic", "sent_acc"), ("test_user", "js"), ("test_topic", "js"))


def _headline_table(csv: Path) -> str:
    """Markdown rows of the committed results table: sentiment accuracy and crowd JS with their 95% CIs."""
    import pandas as pd

    table = pd.read_csv(csv, index_col=0)
    head = (
        "| row | " + " | ".join(f"{m} · {s}" for s, m in _HEADLINE) + " |\n|---|" + "---:|" * len(_HEADLINE)
    )
    lines = [head]
    for method, row in table.iterrows():
        cells = []
        for split, metric in _HEADLINE:
            v = row.get(f"{split}/{metric}")
            lo, hi = row.get(f"{split}/{metric}_low"), row.get(f"{split}/{metric}_high")
            cells.append(
                "—" if pd.isna(v) else f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if not pd.isna(lo) else f"{v:.3f}"
            )
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sync_results(
    readme: Path = ROOT / "README.md",
    executed: Path = EXECUTED_DIR,
    results_csv: Path = ROOT / "figures" / "06_results.csv",
) -> bool:
    """Write the README's "What you will see" block from the committed run: notebook 06's table (sentiment accuracy
    and crowd JS with CIs) and each notebook's reading as the notebook printed it (``reference.record_reading``),
    so the README says only what the code computed. Returns True when the README changed."""
    from socialalign_lib.data.write import write_text

    from .reference import read_summary

    if not readme.exists():
        return False
    parts = [RESULTS_BEGIN, ""]
    if results_csv.exists():
        parts += [
            "Notebook 06's table, means over the committed seeds with 95% bootstrap intervals "
            f"(`{results_csv.relative_to(ROOT) if results_csv.is_relative_to(ROOT) else results_csv}`; all metrics "
            "in the CSV):",
            "",
            _headline_table(results_csv),
            "",
        ]
    for path in sorted(executed.glob("[0-9][0-9]_summary.json")):
        summary = read_summary(path) or {}
        if summary.get("reading"):
            nb = next(iter(sorted(executed.glob(f"{summary['notebook']}_*.ipynb"))), None)
            parts += [
                f"**{nb.stem if nb else summary['notebook']}** ({summary.get('date', '')}, size "
                f"{summary.get('size')}): {summary['reading'].strip()}",
                "",
            ]
    parts.append(RESULTS_END)
    block = "\n".join(parts)
    text = readme.read_text(encoding="utf-8")
    if RESULTS_BEGIN in text and RESULTS_END in text:
        new = text[: text.index(RESULTS_BEGIN)] + block + text[text.index(RESULTS_END) + len(RESULTS_END) :]
    else:
        return False
    if new != text:
        write_text(readme, new)
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--size", default=None, help="world size injected into every notebook (default: each notebook's own)"
    )
    ap.add_argument("--only", nargs="*", help="notebook name prefixes to run, e.g. 00 03")
    ap.add_argument(
        "--cell-timeout",
        type=int,
        default=None,
        help="seconds one cell may run (default $SOCIALALIGN_CELL_TIMEOUT or 1800)",
    )
    ap.add_argument(
        "--sync-runtimes",
        action="store_true",
        help="only copy figures/course_runtimes.csv into the notebooks' runtime lines and the README",
    )
    args = ap.parse_args(argv)
    if args.sync_runtimes:
        print("[course] runtimes quoted in:", [str(p) for p in sync_runtimes()] or "nothing to change")
        print("[course] README results", "updated" if sync_results() else "unchanged")
        return 0
    params = {"size": args.size} if args.size else {}
    total = time.time()
    for path in notebook_paths(args.only):
        t = time.time()
        print(f"[course] {path.name} ...", flush=True)
        try:
            execute_notebook(path, params, timeout=args.cell_timeout)
        except NotebookRunError as exc:
            print(f"[course] FAILED {exc}", file=sys.stderr, flush=True)
            return 1
        seconds = time.time() - t
        record_runtime(path.stem, seconds, args.size or "course")
        print(f"[course] {path.name} done in {seconds:.0f} s", flush=True)
    print(f"[course] all notebooks executed in {time.time() - total:.0f} s; figures in figures/", flush=True)
    if (
        not args.only and not args.size
    ):  # a full course-size run: quote its runtimes and results in the README
        print(
            "[course] runtimes quoted in:",
            [str(p) for p in sync_runtimes()] or "nothing to change",
            flush=True,
        )
        print("[course] README results", "updated" if sync_results() else "unchanged", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
