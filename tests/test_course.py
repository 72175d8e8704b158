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
    with pytest.raises(
        NotebookRunError, match=r"99_probe\.ipynb: cell 1 \('import time'\) timed out after 3 s"
    ):
        execute_notebook(path, out_dir=tmp_path / "out", timeout=3)


@pytest.mark.slow
def test_error_names_notebook_and_cell_and_kernel_waits_passively(tmp_path):
    path = _notebook(
        tmp_path,
        "import os\nassert os.environ['OMP_WAIT_POLICY'] == os.environ['EXPECTED_POLICY']",
        "1 / 0",
    )
    os.environ["EXPECTED_POLICY"] = os.environ["OMP_WAIT_POLICY"]
    with pytest.raises(
        NotebookRunError, match=r"99_probe\.ipynb: cell 1 \('1 / 0'\) raised ZeroDivisionError"
    ):
        execute_notebook(path, out_dir=tmp_path / "out", timeout=60)


def test_record_runtime_updates_one_row_per_notebook(tmp_path):
    from socialalign_lib.course import record_runtime

    path = tmp_path / "runtimes.csv"
    record_runtime("00_tour", 12.3, "course", path)
    record_runtime("01_collect", 5.0, "tiny", path)
    record_runtime("00_tour", 40.4, "course", path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "notebook,seconds,size,cores,load_average,date"
    assert [line.split(",")[:3] for line in lines[1:]] == [
        ["00_tour", "40", "course"],
        ["01_collect", "5", "tiny"],
    ]


def test_runtime_quotes_match_the_measured_csv():
    """Each notebook's runtime line and the README's table quote figures/course_runtimes.csv (make course keeps
    them in step with ``course.sync_runtimes``; a hand edit or a skipped sync fails here)."""
    import nbformat

    from socialalign_lib.course import RUNTIME_CELL_ID, RUNTIMES_CSV, notebook_paths, read_runtimes
    from socialalign_lib.paths import ROOT

    rows = read_runtimes(RUNTIMES_CSV)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in notebook_paths():
        row = rows[path.stem]
        cells = [c for c in nbformat.read(path, as_version=4).cells if c.get("id") == RUNTIME_CELL_ID]
        assert len(cells) == 1 and cells[0] is not None, f"{path.name}: no runtime cell"
        assert f"**Runtime: {row['seconds']} s** on {row['cores']} CPU cores" in cells[0].source, path.name
        assert f"| `{path.stem}` | {row['seconds']} |" in readme, path.stem
    total = sum(int(r["seconds"]) for r in rows.values())
    assert f"| **all** (`make course`) | **{total}** ({total / 60:.1f} min) |" in readme


def test_sync_runtimes_rewrites_only_the_numbers(tmp_path):
    import shutil

    import nbformat

    from socialalign_lib.course import RUNTIME_CELL_ID, RUNTIMES_CSV, notebook_paths, sync_runtimes
    from socialalign_lib.paths import ROOT

    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    source = notebook_paths()[0]
    shutil.copy(source, nb_dir / source.name)
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    csv_text = RUNTIMES_CSV.read_text(encoding="utf-8")
    row = next(line for line in csv_text.splitlines() if line.startswith(source.stem + ","))
    seconds = row.split(",")[1]
    (tmp_path / "runtimes.csv").write_text(csv_text.replace(row, row.replace(f",{seconds},", ",777,", 1)))
    changed = sync_runtimes(tmp_path / "runtimes.csv", nb_dir, tmp_path / "README.md")
    assert set(changed) == {nb_dir / source.name, tmp_path / "README.md"}
    cell = next(
        c for c in nbformat.read(nb_dir / source.name, as_version=4).cells if c.get("id") == RUNTIME_CELL_ID
    )
    assert "**Runtime: 777 s**" in cell.source
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert f"| `{source.stem}` | 777 |" in readme
    assert len(readme.splitlines()) == len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert sync_runtimes(tmp_path / "runtimes.csv", nb_dir, tmp_path / "README.md") == []  # idempotent
