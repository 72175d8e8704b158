""" "What you should see": a run's key numbers next to the committed reference run's.

A notebook calls :func:`show_expected` after a key result::

    show_expected({"unseen-topic JS, PAC-LoRA": js_pac, "oracle JS": js_oracle}, notebook="06", size=size,
                  tol=0.02)

It shows a table — this run, the reference run, their difference (and, with ``tol``, whether the difference is
within it) — so a reader sees at once whether their run reproduced the committed one, without reading
conditional prose.

**Where the reference comes from.** Nothing is typed by hand. ``make course`` executes each notebook into
``notebooks/executed/`` (``course.execute_notebook``) and sets ``$SOCIALALIGN_SUMMARY_DIR`` to that folder for the
kernel; every :func:`show_expected` call then also records its numbers in ``notebooks/executed/NN_summary.json``
(written atomically, with the run's size), next to the executed copy committed from the same run. A run started
anywhere else (Jupyter, the tests, which send it to their temporary folder) reads the reference but never
overwrites it. During ``make course`` the notebook reads the previous reference before writing the new one (it is
read once per notebook and kept), so the executed copy shows the previous committed run beside this one: equal
numbers there mean the course reproduced itself.

A run at another size than the reference (the tests run ``tiny``; the reference is ``course``) still gets its
table, with a note that the numbers are not comparable. A key the reference lacks shows as missing; that is how a
new key looks until ``make course`` runs again.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .paths import ROOT

#: Where ``make course`` leaves the executed notebooks and their summaries (committed).
REFERENCE_DIR = ROOT / "notebooks" / "executed"
#: Set by ``course.execute_notebook`` for the kernel: the folder where this run records its numbers.
SUMMARY_DIR_ENV = "SOCIALALIGN_SUMMARY_DIR"

Number = float | int | bool | str | None

# Per notebook: the reference as it was when this process first read it, and this run's numbers so far. A
# notebook runs in its own kernel, so this is one notebook's state in practice.
_REFERENCE_CACHE: dict[tuple[str, Path], dict[str, Any]] = {}
_THIS_RUN: dict[tuple[str, Path], dict[str, Any]] = {}
_READINGS: dict[tuple[str, Path], str] = {}


def notebook_id(notebook: str) -> str:
    """``"06"``, ``"06_results_and_ablations"`` or ``"06_results_and_ablations.ipynb"`` → ``"06"``."""
    key = Path(str(notebook)).name[:2]
    if not key.isdigit():
        raise ValueError(f"notebook {notebook!r}: expected a course notebook id such as '06' or '06_results'")
    return key


def summary_path(notebook: str, folder: str | Path | None = None) -> Path:
    """The summary file of ``notebook`` in ``folder`` (default: the committed reference folder)."""
    return Path(folder if folder is not None else REFERENCE_DIR) / f"{notebook_id(notebook)}_summary.json"


def _plain(value: Any, name: str) -> Number:
    """A JSON-able scalar: numpy / torch scalars become Python numbers; anything else is refused by name."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalar
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    raise TypeError(f"show_expected: {name!r} is a {type(value).__name__}; give a number, a bool or a string")


def read_summary(path: Path) -> dict[str, Any] | None:
    """A summary file's content, or None when there is none; a damaged file raises naming the file."""
    from socialalign_lib.data.read import read_json

    if not path.exists():
        return None
    summary = read_json(path)
    if not isinstance(summary, dict) or not isinstance(summary.get("numbers"), dict):
        raise ValueError(f"{path}: not a course summary (expected an object with a 'numbers' object)")
    return summary


def reference_numbers(
    notebook: str, keys: list[str] | None = None, folder: str | Path | None = None
) -> dict[str, Number]:
    """The committed reference run's numbers for ``notebook`` (all, or ``keys``; a missing key maps to None).

    Read from ``notebooks/executed/NN_summary.json``, which only ``make course`` writes."""
    summary = read_summary(summary_path(notebook, folder)) or {"numbers": {}}
    numbers = summary["numbers"]
    return dict(numbers) if keys is None else {k: numbers.get(k) for k in keys}


def _reference(notebook: str, folder: Path) -> dict[str, Any]:
    key = (notebook_id(notebook), folder.resolve())
    if key not in _REFERENCE_CACHE:
        _REFERENCE_CACHE[key] = read_summary(summary_path(notebook, folder)) or {}
    return _REFERENCE_CACHE[key]


def _summary_target(notebook: str, folder: str | Path | None) -> tuple[Path, tuple[str, Path]] | None:
    """The summary file this run records into (``folder``, else ``$SOCIALALIGN_SUMMARY_DIR``; None: record nothing)
    and its key in this process's state."""
    target = folder if folder is not None else os.environ.get(SUMMARY_DIR_ENV)
    if not target:
        return None
    path = summary_path(notebook, target)
    return path, (notebook_id(notebook), path.parent.resolve())


def _write_summary(path: Path, key: tuple[str, Path], size: str | None) -> Path:
    """This process's numbers (and reading) for the notebook, written atomically: a run that stops half-way leaves
    only its own numbers, never a mix with an older run's."""
    from socialalign_lib.data.write import write_json

    reading = _READINGS.get(key)
    return write_json(
        path,
        {
            "notebook": key[0],
            "size": size,
            "date": time.strftime("%Y-%m-%d"),
            "written_by": "make course (socialalign_lib.reference)",
            "numbers": _THIS_RUN.setdefault(key, {}),
            **({"reading": reading} if reading else {}),
        },
        sort_keys=False,
    )


def record_numbers(
    numbers: Mapping[str, Number], notebook: str, size: str | None, folder: str | Path | None = None
) -> Path | None:
    """Add ``numbers`` to this run's summary file in ``folder`` (default ``$SOCIALALIGN_SUMMARY_DIR``; nothing is
    written when neither is set). The file holds every number this process recorded for the notebook."""
    found = _summary_target(notebook, folder)
    if found is None:
        return None
    path, key = found
    # JSON has no NaN / infinity (the project's writer refuses them): a number that is not finite is recorded as None
    _THIS_RUN.setdefault(key, {}).update(
        {name: None if isinstance(v, float) and not math.isfinite(v) else v for name, v in numbers.items()}
    )
    return _write_summary(path, key, size)


def record_reading(
    text: str, notebook: str, size: str | None, folder: str | Path | None = None
) -> Path | None:
    """Record the notebook's computed reading of its result (markdown printed from this run's numbers) in its
    summary file, like :func:`record_numbers`: the README's "What you will see" quotes it verbatim
    (``course.sync_results``), so the README never says what a run did not print."""
    found = _summary_target(notebook, folder)
    if found is None:
        return None
    path, key = found
    _READINGS[key] = text
    return _write_summary(path, key, size)


def _difference(this: Number, ref: Number) -> float | None:
    numeric = (int, float)
    if (
        isinstance(this, bool)
        or isinstance(ref, bool)
        or not isinstance(this, numeric)
        or not isinstance(ref, numeric)
    ):
        return None
    return float(this) - float(ref)


def expected_table(
    numbers: Mapping[str, Any],
    notebook: str,
    size: str | None = None,
    tol: float | Mapping[str, float] | None = None,
    reference_dir: str | Path | None = None,
) -> pd.DataFrame:
    """The comparison :func:`show_expected` shows, without showing or recording anything.

    Columns: ``this run``, ``reference run``, ``difference`` (numbers only) and, with ``tol`` (one absolute
    tolerance, or one per key), ``as expected`` — True when the difference is within it (non-numbers: when equal),
    None when there is nothing to compare (no reference, or runs of different sizes). ``attrs`` carries the
    reference's size and date and whether the sizes match."""
    folder = Path(reference_dir) if reference_dir is not None else REFERENCE_DIR
    numbers = {name: _plain(value, name) for name, value in numbers.items()}
    ref = _reference(notebook, folder)
    ref_numbers = ref.get("numbers", {})
    comparable = bool(ref) and (size is None or ref.get("size") in (None, size))
    rows = {}
    for name, this in numbers.items():
        other = ref_numbers.get(name)
        row = {"this run": this, "reference run": other, "difference": _difference(this, other)}
        if tol is not None:
            limit = tol.get(name) if isinstance(tol, Mapping) else tol
            if not comparable or other is None or limit is None:
                row["as expected"] = None
            elif row["difference"] is None:
                row["as expected"] = this == other
            else:
                row["as expected"] = bool(
                    abs(row["difference"]) <= limit
                    or (isinstance(this, float) and math.isnan(this) and math.isnan(float(other)))
                )
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.attrs.update(
        {
            "reference_size": ref.get("size"),
            "reference_date": ref.get("date"),
            "comparable": comparable,
            "has_reference": bool(ref),
        }
    )
    return table


def _shown(value: Any) -> str:
    """A cell of the displayed table: counts as integers, other numbers to 4 significant digits, "—" for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, (bool, str)):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    return f"{value:.4g}"


def show_expected(
    numbers: Mapping[str, Any],
    notebook: str,
    size: str | None = None,
    look_for: str | None = None,
    tol: float | Mapping[str, float] | None = None,
    reference_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Show this run's ``numbers`` beside the committed reference run's, say what to look for, record them.

    ``notebook``: ``"06"`` or the notebook's name; ``size``: the run's world size (a reference of another size is
    shown but flagged as not comparable); ``look_for``: one or two sentences, printed under the table; ``tol``:
    see :func:`expected_table`. Under ``make course`` the numbers are also recorded as the next reference
    (:func:`record_numbers`). Returns the table (it is also displayed)."""
    table = expected_table(numbers, notebook, size, tol, reference_dir)
    record_numbers({name: _plain(value, name) for name, value in numbers.items()}, notebook, size)
    attrs = table.attrs
    if not attrs["has_reference"]:
        note = (
            f"No reference run yet ({summary_path(notebook, reference_dir)} is missing): `make course` "
            "writes it."
        )
    elif not attrs["comparable"]:
        note = (
            f"The reference run is at size {attrs['reference_size']!r} ({attrs['reference_date']}), this run at "
            f"{size!r}: the numbers are not comparable; run at {attrs['reference_size']!r} to check them."
        )
    else:
        note = f"Reference: the committed `make course` run of {attrs['reference_date']} (size {attrs['reference_size']!r})."  # noqa: E501
    try:
        from IPython.display import Markdown, display

        display(table.astype(object).map(_shown))
        display(Markdown(note + (f"\n\n**What to look for.** {look_for}" if look_for else "")))
    except ImportError:  # pragma: no cover - IPython is in the lock; plain Python still gets the text
        print(table.astype(object).map(_shown).to_string(), note, look_for or "", sep="\n")
    return table
