"""reference.py: "what you should see" tables compare a run with the committed reference run, and record the run's
numbers only where make course asks (SOCIALALIGN_SUMMARY_DIR), reading the old reference before overwriting it."""

from __future__ import annotations

import json

import nbformat
import pytest

from socialalign_lib import reference
from socialalign_lib.data.write import write_json


def _reference(folder, numbers, size="course"):
    write_json(
        folder / "06_summary.json", {"notebook": "06", "size": size, "date": "2026-12-06", "numbers": numbers}
    )


def test_table_shows_reference_difference_and_tolerance(tmp_path, monkeypatch):
    monkeypatch.delenv(reference.SUMMARY_DIR_ENV, raising=False)
    _reference(tmp_path, {"js": 0.10, "n topics": 12, "verdict": "PAC-LoRA closer"})
    table = reference.show_expected(
        {"js": 0.13, "n topics": 12, "verdict": "LoRA closer", "new": 1.0},
        notebook="06_results_and_ablations",
        size="course",
        tol={"js": 0.02, "verdict": 0, "n topics": 0},
        reference_dir=tmp_path,
        look_for="JS near the reference",
    )
    assert table.loc["js", "reference run"] == 0.10
    assert table.loc["js", "difference"] == pytest.approx(0.03)
    assert not table.loc["js", "as expected"]
    assert table.loc["n topics", "as expected"]
    assert not table.loc["verdict", "as expected"]  # strings: equal or not
    assert table.loc["new", "reference run"] is None and table.loc["new", "as expected"] is None
    assert table.attrs["comparable"] and not (tmp_path / "06_summary.json").read_text().count(
        "0.13"
    )  # not recorded


def test_other_size_or_no_reference_is_not_compared(tmp_path):
    _reference(tmp_path, {"js": 0.10})
    tiny = reference.expected_table({"js": 0.5}, "06", size="tiny", tol=1.0, reference_dir=tmp_path)
    assert not tiny.attrs["comparable"] and tiny.loc["js", "as expected"] is None
    none = reference.expected_table({"js": 0.5}, "07", size="course", tol=1.0, reference_dir=tmp_path)
    assert not none.attrs["has_reference"] and none.loc["js", "reference run"] is None


def test_make_course_records_after_reading_the_old_reference(tmp_path, monkeypatch):
    """Under make course the reference folder is also where the run records: each call still shows the previous
    run's numbers, and the file ends with this run's numbers only (NaN recorded as null)."""
    import numpy as np

    _reference(tmp_path, {"a": 1.0, "b": 2.0, "stale": 9.0})
    monkeypatch.setenv(reference.SUMMARY_DIR_ENV, str(tmp_path))
    first = reference.show_expected({"a": np.float64(1.5)}, "06", size="course", reference_dir=tmp_path)
    second = reference.show_expected(
        {"b": 2.5, "c": float("nan")}, "06", size="course", reference_dir=tmp_path
    )
    assert first.loc["a", "reference run"] == 1.0 and second.loc["b", "reference run"] == 2.0
    saved = json.loads((tmp_path / "06_summary.json").read_text())
    assert saved["numbers"] == {"a": 1.5, "b": 2.5, "c": None} and saved["size"] == "course"
    assert reference.reference_numbers("06", ["a", "zzz"], folder=tmp_path) == {"a": 1.5, "zzz": None}


def test_bad_input_names_the_problem(tmp_path):
    (tmp_path / "06_summary.json").write_text('{"numbers": [1, 2]}')
    with pytest.raises(ValueError, match="06_summary.json"):
        reference.reference_numbers("06", folder=tmp_path)
    with pytest.raises(TypeError, match="'table'"):
        reference.expected_table({"table": [1, 2]}, "05", reference_dir=tmp_path)
    with pytest.raises(ValueError, match="course notebook id"):
        reference.notebook_id("tour")


@pytest.mark.slow
@pytest.mark.notebook
def test_execute_notebook_records_the_summary_beside_the_copy(tmp_path):
    """course.execute_notebook (make course, the notebook tests) points the kernel at its output folder."""
    from socialalign_lib.course import execute_notebook

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("size = 'tiny'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "from socialalign_lib.reference import show_expected\n"
            "show_expected({'answer': 42}, notebook='99', size=size)"
        ),
    ]
    source = tmp_path / "99_probe.ipynb"
    nbformat.write(nb, source)
    execute_notebook(source, {}, out_dir=tmp_path / "executed")
    saved = json.loads((tmp_path / "executed" / "99_summary.json").read_text())
    assert saved["numbers"] == {"answer": 42} and saved["size"] == "tiny"


def test_readings_reach_the_readme_verbatim(tmp_path, monkeypatch):
    """A notebook's computed reading is recorded with its numbers (in either order) and course.sync_results quotes it
    in the README block, with notebook 06's headline table; text outside the markers is untouched."""
    from socialalign_lib import course

    monkeypatch.setenv(reference.SUMMARY_DIR_ENV, str(tmp_path))
    reference.record_reading("PAC-LoRA 0.512 vs LoRA 0.498: cannot be told apart.", "05", "course")
    reference.show_expected({"js": 0.1}, "05", size="course", reference_dir=tmp_path)
    saved = json.loads((tmp_path / "05_summary.json").read_text())
    assert saved["reading"].startswith("PAC-LoRA 0.512") and saved["numbers"] == {"js": 0.1}
    (tmp_path / "05_macro_alignment.ipynb").write_text("{}")
    csv = tmp_path / "06_results.csv"
    csv.write_text(
        "method,test_user/sent_acc,test_user/sent_acc_low,test_user/sent_acc_high,test_topic/js\n"
        "LoRA,0.6,0.5,0.7,0.05\n"
    )
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{course.RESULTS_BEGIN}\nold\n{course.RESULTS_END}\nafter\n")
    assert course.sync_results(readme, executed=tmp_path, results_csv=csv)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("after\n") and "\nold\n" not in text
    assert "| LoRA | 0.600 [0.500, 0.700] | — | — | 0.050 |" in text
    assert "**05_macro_alignment** (" in text and "cannot be told apart." in text
    assert not course.sync_results(readme, executed=tmp_path, results_csv=csv)  # idempotent
