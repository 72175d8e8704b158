"""course.py: a failing or timed-out notebook names the notebook and the cell; kernels get the CPU defaults."""

from __future__ import annotations

import os

import nbformat
import pytest

from socialalign_lib.course import NotebookRunError, execute_notebook


def _notebook(tmp_path, *sources: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "99_probe.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_timeout_names_notebook_and_cell(tmp_path):
    path = _notebook(tmp_path, "x = 1", "import time\ntime.sleep(30)")
    with pytest.raises(NotebookRunError, match=r"99_probe\.ipynb: cell 1 \('import time'\) timed out after 3 s"):
        execute_notebook(path, out_dir=tmp_path / "out", timeout=3)


@pytest.mark.slow
def test_error_names_notebook_and_cell_and_kernel_waits_passively(tmp_path):
    path = _notebook(
        tmp_path,
        "import os\nassert os.environ['OMP_WAIT_POLICY'] == os.environ['EXPECTED_POLICY']",
        "1 / 0",
    )
    os.environ["EXPECTED_POLICY"] = os.environ["OMP_WAIT_POLICY"]
    with pytest.raises(NotebookRunError, match=r"99_probe\.ipynb: cell 1 \('1 / 0'\) raised ZeroDivisionError"):
        execute_notebook(path, out_dir=tmp_path / "out", timeout=60)


def test_record_runtime_updates_one_row_per_notebook(tmp_path):
    from socialalign_lib.course import record_runtime

    path = tmp_path / "runtimes.csv"
    record_runtime("00_tour", 12.3, "course", path)
    record_runtime("01_collect", 5.0, "tiny", path)
    record_runtime("00_tour", 40.4, "course", path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "notebook,seconds,size,cores,load_average,date"
    assert [line.split(",")[:3] for line in lines[1:]] == [["00_tour", "40", "course"], ["01_collect", "5", "tiny"]]
