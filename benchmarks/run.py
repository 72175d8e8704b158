"""`make bench`: measure every figure, print a table, write `figures/benchmarks.csv`.

    python -m benchmarks.run                  # all figures, a few minutes on a 2-core CPU
    python -m benchmarks.run --quick          # smoke run, about a minute
    python -m benchmarks.run --course-time --test-time   # also time `make course` and `make test`
    python -m benchmarks.run --only train decode          # a subset
    python -m benchmarks.run --only contention            # a course notebook alone vs beside a CPU hog

Every comparison is a ratio measured in this one process with the two contenders interleaved (see
`benchmarks.common`); absolute numbers depend on the machine and on whoever else uses it. CPU threads:
all cores (2 on the course machine) when it is idle, 1 when it is busy (`common.choose_threads`). On CUDA
(`torch.cuda.is_available()`, or `--device cuda`) the same benchmarks run in bf16 with NF4 4-bit,
and the larger random model is Qwen2-0.5B-shaped. That CUDA path was written without a GPU at hand and
has not been run yet: treat its first results with care.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from socialalign_lib.paths import FIGURES_DIR

from .common import (
    CSV_COLUMNS,
    BenchConfig,
    Result,
    choose_threads,
    compute_dtype,
    device_label,
    matmul_flops,
    resolve_device,
)
from .contention import DEFAULT_PARAMETERS, bench_contention
from .decode import bench_decode
from .generation import bench_generation
from .quant import bench_quant, saved_model_folder
from .train_step import bench_train_step
from .wall_time import bench_wall_time
from .workloads import load_course_workload, random_qwen2, train_batch

BENCHMARKS: tuple[str, ...] = ("train", "decode", "generation", "quant", "contention")
DEFAULT_CSV = FIGURES_DIR / "benchmarks.csv"


_START = time.perf_counter()


def log(message: str) -> None:
    print(f"[bench {time.perf_counter() - _START:6.1f} s] {message}", file=sys.stderr, flush=True)


def quiet_libraries() -> None:
    """No per-call progress bars (datasets filters, weight loading) and no deprecation chatter in the table run."""
    import warnings

    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)


def run_benchmarks(cfg: BenchConfig, only: Sequence[str] = BENCHMARKS) -> list[Result]:
    """Measure the figures of the benchmarks named in `only` (and the wall times `cfg` asks for).

    Sets torch's CPU threads to `cfg.threads` (None: `common.choose_threads`) for the run and restores them.
    """
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        raise ValueError(f"unknown benchmarks {sorted(unknown)}; choose from {BENCHMARKS}")
    device = resolve_device(cfg.device)
    threads, why = choose_threads(cfg.threads)
    cfg = replace(cfg.for_device(device), threads=threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(cfg, only, device, why)
    finally:
        torch.set_num_threads(previous)


def _run(cfg: BenchConfig, only: Sequence[str], device: str, threads_why: str) -> list[Result]:
    load_at_start = load_average()
    label = device_label(device, cfg.threads)
    log(f"{cfg.threads} CPU thread(s): {threads_why}")
    dtype = compute_dtype(device)
    log(f"device {label}; loading the course model and tiny-world records")
    n_prompts = max(cfg.gen_prompts, *cfg.decode_batches)
    workload = load_course_workload(device, dtype, max(cfg.train_batch, cfg.large_batch), n_prompts, cfg.seed)
    pad = workload.pad_id
    log("measuring the matmul peak")
    peak = matmul_flops(device, dtype, cfg.peak_sizes)
    results = [
        Result(
            "machine",
            "matmul_peak",
            peak / 1e9,
            "GFLOP/s",
            device=label,
            notes=f"best median square torch.matmul ({str(dtype).removeprefix('torch.')}) over sizes {list(cfg.peak_sizes)}",  # noqa: E501
        )
    ]
    large_name = f"random-{cfg.large_shape.label()}"
    large = random_qwen2(cfg.large_shape, len(workload.tokenizer), pad, device, dtype, cfg.seed)
    course_batch = train_batch(workload.examples[: cfg.train_batch], pad, device)
    large_batch = train_batch(workload.examples[: cfg.large_batch], pad, device)

    if "train" in only:
        log("train step: PAC-LoRA vs LoRA, course model")
        results += bench_train_step(
            cfg,
            workload.model,
            course_batch,
            "course",
            device,
            label,
            peak,
            cfg.train_rounds,
            cfg.train_repeats,
            mfu_target=True,
        )
        log(f"train step: PAC-LoRA vs LoRA, {large_name}")
        results += bench_train_step(
            cfg, large, large_batch, large_name, device, label, peak, cfg.large_rounds, 1, mfu_target=False
        )
    if "decode" in only:
        log("decode: PAC-LoRA vs LoRA, course model")
        results += bench_decode(cfg, workload.model, workload.prompts, pad, "course", device, label)
        log(f"decode: PAC-LoRA vs LoRA, {large_name} (batch {cfg.decode_batches[0]})")
        results += bench_decode(
            replace(cfg, decode_batches=cfg.decode_batches[:1]),
            large,
            workload.prompts,
            pad,
            large_name,
            device,
            label,
        )
    if "generation" in only:
        log("generation: replies per minute, course model")
        results += bench_generation(
            cfg, workload.model, workload.tokenizer, workload.records, "course", device, label
        )
    if "quant" in only:
        from socialalign_lib.paths import EMBEDDED_MODEL

        log("4-bit: course model")
        results += bench_quant(cfg, EMBEDDED_MODEL, "course", device, label, course_batch)
        log(f"4-bit: {large_name}")
        folder = saved_model_folder(large, workload.tokenizer)
        with folder:
            results += bench_quant(cfg, folder.name, large_name, device, label, large_batch)
    if "contention" in only:
        params = {**DEFAULT_PARAMETERS, "size": cfg.contention_size}
        log(f"contention: a course notebook alone, then beside a CPU hog ({params}; minutes)")
        results += bench_contention(label, parameters=params)
    if cfg.course_time or cfg.test_time:
        log("wall time of the course / the tests (minutes)")
        results += bench_wall_time(label, cfg.course_time, cfg.test_time)
    results[0].notes += (
        f"; {cfg.threads} CPU thread(s): {threads_why}; load average {load_at_start} at start, "
        f"{load_average()} at the end"
    )
    return results


def load_average() -> str:
    """1-minute load average against the core count: above the cores, every timing here is contended."""
    try:
        return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    except OSError:
        return "unknown"


def write_csv(results: Sequence[Result], path: str | Path) -> Path:
    """Write the rows with columns `CSV_COLUMNS`; creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for result in results:
            writer.writerow(result.as_row())
    return path


def format_table(results: Sequence[Result]) -> str:
    """A fixed-width table (benchmark, figure, value, unit, target, met) with the notes numbered below it."""
    header = ("benchmark", "figure", "value", "unit", "target", "met", "note")
    rows = []
    for i, result in enumerate(results, start=1):
        row = result.as_row()
        rows.append(
            (
                row["benchmark"],
                row["figure"],
                _short(result.value),
                row["unit"],
                row["target"],
                row["met"],
                f"[{i}]" if result.notes else "",
            )
        )
    widths = [max(len(str(r[c])) for r in (header, *rows)) for c in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(r, widths)).rstrip() for r in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    devices = sorted({r.device for r in results if r.device})
    lines.append("")
    lines += [f"device: {d}" for d in devices]
    lines += [f"[{i}] {r.notes}" for i, r in enumerate(results, start=1) if r.notes]
    return "\n".join(lines)


def _short(value: float) -> str:
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-2):
        return f"{value:.3g}"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def parse_args(argv: Sequence[str] | None = None) -> tuple[BenchConfig, list[str], Path]:
    """Command line -> (config, benchmarks to run, CSV path)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: fewer rounds, smaller sizes")
    ap.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu or cuda")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: all cores, 2 on the course machine, or 1 when the machine is busy)",
    )
    ap.add_argument(
        "--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS), help="benchmarks to run"
    )
    ap.add_argument("--no-profile", action="store_true", help="no torch.profiler evidence for missed targets")
    ap.add_argument(
        "--course-time", action="store_true", help="also time `python -m socialalign_lib.course` (minutes)"
    )
    ap.add_argument("--test-time", action="store_true", help="also time `pytest -q` (minutes)")
    ap.add_argument("--out", default=str(DEFAULT_CSV), help=f"CSV path (default {DEFAULT_CSV})")
    args = ap.parse_args(argv)
    options = dict(
        device=args.device,
        threads=args.threads,
        profile=not args.no_profile,
        course_time=args.course_time,
        test_time=args.test_time,
    )
    cfg = BenchConfig.quick(**options) if args.quick else BenchConfig(**options)
    return cfg, list(args.only), Path(args.out)


def main(argv: Sequence[str] | None = None) -> int:
    cfg, only, out = parse_args(argv)
    quiet_libraries()
    results = run_benchmarks(cfg, only)
    print(format_table(results))
    print(f"\nwrote {write_csv(results, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
