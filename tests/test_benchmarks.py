"""`benchmarks/` (make bench): the run produces every expected row, the byte counts are right, the timing helpers
pair and alternate as documented. Values of timings are not checked (they are machine figures, not tests).

One minimal run of the whole suite (course model, a 2-layer random "large" model, 2-3 tokens, one round)
is shared by the tests of this module; it takes a few seconds.
"""

from __future__ import annotations

import csv
import json
import math
import sys

import pytest
import torch

from socialalign_lib.paths import EMBEDDED_MODEL, ROOT

if str(ROOT) not in sys.path:  # `benchmarks` is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402
    CSV_COLUMNS,
    BenchConfig,
    ModelShape,
    interleave,
    paired_ratio,
    profile_ops,
)
from benchmarks.run import format_table, parse_args, run_benchmarks, write_csv  # noqa: E402

MINIMAL = dict(
    device="cpu",
    threads=1,
    warmup=0,
    train_batch=2,
    train_rounds=1,
    train_repeats=1,
    large_shape=ModelShape(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
    ),
    large_batch=1,
    large_rounds=1,
    decode_batches=(1, 2),
    decode_new_tokens=3,
    decode_rounds=1,
    gen_batches=(1, 2),
    gen_prompts=2,
    gen_new_tokens=3,
    quant_rounds=1,
    peak_sizes=(128,),
    profile=False,
)


def expected_figures(large: str, decode_batches, gen_batches) -> set[str]:
    """Every row a run with these sizes must write (written out independently of the code under test)."""
    figures = {"matmul_peak"}
    for model in ("course", large):
        figures |= {
            f"pac_over_lora_step_time[{model}]",
            f"pac_step_ms[{model}]",
            f"lora_step_ms[{model}]",
            f"train_step_mfu[{model}]",
        }
        for b in decode_batches if model == "course" else decode_batches[:1]:
            figures |= {
                f"pac_over_lora_decode_tokens_per_s[{model},b{b}]",
                f"pac_decode_tokens_per_s[{model},b{b}]",
            }
        figures |= {
            f"linear_weight_bytes_float32[{model}]",
            f"linear_weight_bytes_nf4[{model}]",
            f"nf4_over_float32_linear_bytes[{model}]",
            f"nf4_over_float32_model_bytes[{model}]",
            f"nf4_over_float32_step_time[{model}]",
        }
    figures |= {f"replies_per_minute[course,b{b}]" for b in gen_batches}
    return figures


MICRO = ("train", "decode", "generation", "quant")  # all but the notebook-scale contention run (tested below)


@pytest.fixture(scope="module")
def minimal_rows(tmp_path_factory) -> list[dict[str, str]]:
    threads = torch.get_num_threads()
    results = run_benchmarks(BenchConfig.quick(**MINIMAL), only=MICRO)
    assert torch.get_num_threads() == threads, "run_benchmarks must restore the thread count"
    path = write_csv(results, tmp_path_factory.mktemp("bench") / "benchmarks.csv")
    with path.open(encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        return list(reader)


@pytest.mark.slow
def test_csv_has_every_expected_row_once(minimal_rows):
    figures = [row["figure"] for row in minimal_rows]
    assert len(figures) == len(set(figures))
    assert set(figures) == expected_figures("random-h64xL2", (1, 2), (1, 2))
    for row in minimal_rows:
        assert math.isfinite(float(row["value"])), row
        assert row["device"].startswith("cpu: ") and "1 thread on" in row["device"], row
        assert row["met"] in ("yes", "no", ""), row
        assert (row["met"] == "") == (row["target"] == ""), row


@pytest.mark.slow
def test_targets_are_those_of_the_issue(minimal_rows):
    targets = {row["figure"]: row["target"] for row in minimal_rows}
    assert targets["pac_over_lora_step_time[course]"] == "<= 1.3"
    assert targets["pac_over_lora_step_time[random-h64xL2]"] == "<= 1.3"
    assert targets["pac_over_lora_decode_tokens_per_s[course,b1]"] == ">= 0.85"
    assert targets["train_step_mfu[course]"] == ">= 30% (aim)"
    assert targets["replies_per_minute[course,b2]"] == ">= 300 (aim)"


def _course_linear_shapes() -> list[tuple[int, int, bool]]:
    """(in, out, has bias) of every linear layer that NF4 quantises, from the course model's config."""
    config = json.loads((EMBEDDED_MODEL / "config.json").read_text(encoding="utf-8"))
    d, ffn = config["hidden_size"], config["intermediate_size"]
    kv = config["num_key_value_heads"] * d // config["num_attention_heads"]
    layer = [
        (d, d, True),
        (d, kv, True),
        (d, kv, True),
        (d, d, False),
        (d, ffn, False),
        (d, ffn, False),
        (ffn, d, False),
    ]
    return layer * config["num_hidden_layers"]


@pytest.mark.slow
def test_weight_bytes_counted_by_hand(minimal_rows):
    """fp32: 4 bytes per weight and bias. NF4 (blocksize 64, double quant): 4 bits per weight, one uint8 absmax
    per 64 weights, a 16-entry fp32 code, one fp32 absmax per 256 absmax blocks and a 256-entry fp32 code."""
    values = {row["figure"]: float(row["value"]) for row in minimal_rows}
    fp32 = nf4 = 0
    for d_in, d_out, bias in _course_linear_shapes():
        n = d_in * d_out
        fp32 += 4 * (n + (d_out if bias else 0))
        nf4 += n // 2 + n // 64 + 16 * 4 + 4 * math.ceil(n / 64 / 256) + 256 * 4 + (4 * d_out if bias else 0)
    assert values["linear_weight_bytes_float32[course]"] == fp32
    assert values["linear_weight_bytes_nf4[course]"] == nf4
    assert values["nf4_over_float32_linear_bytes[course]"] == pytest.approx(nf4 / fp32, rel=1e-5)
    assert 0 < values["nf4_over_float32_model_bytes[course]"] < 1


def test_interleave_alternates_order_and_pairs_rounds():
    calls: list[str] = []
    clock = {"a": iter([9.0, 2.0, 3.0, 8.0]), "b": iter([9.0, 1.0, 1.0, 4.0])}

    def measure(name):
        def run() -> float:
            calls.append(name)
            return next(clock[name])

        return run

    values = interleave({"a": measure("a"), "b": measure("b")}, rounds=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warmup, then a-b, b-a, a-b
    assert values == {"a": [2.0, 3.0, 8.0], "b": [1.0, 1.0, 4.0]}
    assert paired_ratio(values, "a", "b") == 2.0  # median of 2, 3, 2 (not median(a) / median(b) = 3)


def test_profile_ops_finds_the_matmul():
    a = torch.randn(256, 256)
    summary = profile_ops(lambda: torch.relu(a @ a), "cpu", calls=2, top=3)
    names = [name for name, _ in summary.top]
    assert "aten::mm" in names
    assert 0 < summary.matmul_share <= 1
    assert sum(share for _, share in summary.top) <= 1 + 1e-9


def test_parse_args_quick_and_default(tmp_path):
    cfg, only, out = parse_args(
        ["--quick", "--threads", "1", "--only", "train", "quant", "--out", str(tmp_path / "b.csv")]
    )
    assert cfg == BenchConfig.quick(threads=1)
    assert only == ["train", "quant"] and out == tmp_path / "b.csv"
    cfg, only, _ = parse_args(["--course-time"])
    assert cfg == BenchConfig(course_time=True) and cfg.threads is None and not cfg.test_time
    assert only == ["train", "decode", "generation", "quant", "contention"]
    assert BenchConfig.quick().train_rounds < BenchConfig().train_rounds


@pytest.mark.slow
def test_table_lists_every_figure_with_its_note(minimal_rows):
    from benchmarks.common import Result

    results = [
        Result(
            r["benchmark"],
            r["figure"],
            float(r["value"]),
            r["unit"],
            r["target"],
            None if r["met"] == "" else r["met"] == "yes",
            r["device"],
            r["notes"],
        )
        for r in minimal_rows
    ]
    table = format_table(results)
    for i, result in enumerate(results, start=1):
        assert result.figure in table
        assert (f"[{i}] {result.notes}" in table) == bool(result.notes)


def test_choose_threads_respects_the_caller_and_the_load(monkeypatch):
    from benchmarks import common

    assert common.choose_threads(3)[0] == 3
    monkeypatch.setattr(common.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(common.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert common.choose_threads(None)[0] == 2
    monkeypatch.setattr(common.os, "getloadavg", lambda: (4.0, 4.0, 4.0))
    threads, why = common.choose_threads(None)
    assert threads == 1 and "busy" in why


def test_timed_command_reports_status_and_last_line():
    from benchmarks.wall_time import timed_command

    seconds, status, last = timed_command([sys.executable, "-c", "print('a'); print('done')"], timeout_s=60)
    assert status == 0 and last == "done" and seconds > 0
    _, status, _ = timed_command([sys.executable, "-c", "raise SystemExit(3)"], timeout_s=60)
    assert status == 3


@pytest.mark.slow
def test_contention_row_times_a_notebook_alone_and_beside_hogs(tmp_path):
    import nbformat

    from benchmarks.contention import bench_contention

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("figures_dir = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import time\nt = time.process_time()\nwhile time.process_time() - t < 2: pass"
        ),
    ]
    path = tmp_path / "77_spin.ipynb"
    nbformat.write(nb, path)
    (row,) = bench_contention("cpu: test", path, parameters={}, hogs=2)
    assert row.benchmark == "contention" and row.figure == "notebook_77_slowdown[2 hogs]"
    assert row.target == "<= 2" and row.unit == "x"
    # a smoke check of the plumbing (the ratio itself is noisy at this size): both runs finished, in the row
    assert 0.5 < row.value < 10 and "beside 2 spinning processes" in row.notes and "alone" in row.notes
