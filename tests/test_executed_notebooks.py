"""The committed executed notebooks (notebooks/executed/) are the current notebooks, run: same code cells."""

from __future__ import annotations

import nbformat
import pytest

from socialalign_lib.course import EXECUTED_DIR, notebook_paths


def _code(nb) -> list[str]:
    """Code cells, without the cell papermill injects with the run's parameters."""
    return [
        c.source
        for c in nb.cells
        if c.cell_type == "code" and "injected-parameters" not in c.get("metadata", {}).get("tags", [])
    ]


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_executed_copy_is_current(path):
    executed = EXECUTED_DIR / path.name
    assert executed.exists(), f"{executed} missing: run `make course` and commit notebooks/executed/"
    source, run = nbformat.read(path, as_version=4), nbformat.read(executed, as_version=4)
    assert _code(run) == _code(source), f"{executed.name} is stale: rerun `make course` and commit the copy"
    outputs = sum(len(c.get("outputs", [])) for c in run.cells if c.cell_type == "code")
    assert outputs > 0, f"{executed.name} has no outputs"
    errors = [
        o
        for c in run.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert not errors, f"{executed.name} was committed from a failed run"
