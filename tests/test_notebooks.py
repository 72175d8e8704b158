"""Every notebook runs top to bottom headless, at the tiny size injected through its parameters cell."""

from __future__ import annotations

import pytest

from socialalign_lib.course import execute_notebook, notebook_paths

NOTEBOOKS = notebook_paths()


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_headless(path, tmp_path):
    out = execute_notebook(path, {"size": "tiny", "figures_dir": str(tmp_path / "figures")}, out_dir=tmp_path)
    assert out.exists()
    assert list((tmp_path / "figures").glob("*.png")), f"{path.name} saved no figure"
