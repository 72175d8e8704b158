"""What every benchmark shares: the result row, the knobs, interleaved timing, the matmul peak, profiles.

Why interleaving: on a shared machine the speed drifts by tens of percent within a minute. Running
contender A then contender B, round after round (order alternating), and taking the median of the
per-round ratios A/B cancels the drift that a "all of A, then all of B" measurement would book as a
difference between A and B.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch

CSV_COLUMNS: tuple[str, ...] = ("benchmark", "figure", "value", "unit", "target", "met", "device", "notes")


@dataclass
class Result:
    """One row of the benchmark table.

    Attributes:
        benchmark: group, e.g. "train_step".
        figure: what was measured, e.g. "pac_over_lora_step_time[course]".
        value: the number.
        unit: "x", "ms", "tokens/s", "replies/min", "%", "bytes", "s".
        target: human-readable target ("<= 1.3"), "" when the figure is only reported.
        met: whether the target is met (None when there is none).
        device: where it ran (e.g. "cpu: Intel Xeon, 2 threads").
        notes: how it was measured; profile evidence when a target is missed.
    """

    benchmark: str
    figure: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None
    device: str = ""
    notes: str = ""

    def as_row(self) -> dict[str, str]:
        met = "" if self.met is None else ("yes" if self.met else "no")
        return {
            "benchmark": self.benchmark,
            "figure": self.figure,
            "value": f"{self.value:.12g}",
            "unit": self.unit,
            "target": self.target,
            "met": met,
            "device": self.device,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class ModelShape:
    """A Qwen2-shaped decoder (random weights). `vocab_size` None = the course tokenizer's vocabulary."""

    hidden_size: int = 512
    num_hidden_layers: int = 8
    num_attention_heads: int = 8
    num_key_value_heads: int = 2
    intermediate_size: int = 1408
    vocab_size: int | None = None
    tie_word_embeddings: bool = True
    rope_theta: float = 10000.0

    def label(self) -> str:
        return f"h{self.hidden_size}xL{self.num_hidden_layers}"


#: Qwen2-0.5B's shape (hidden 896, 24 layers, 14 heads / 2 KV heads, MLP 4864, vocab 151936, tied embeddings).
QWEN2_05B_SHAPE = ModelShape(
    hidden_size=896,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    intermediate_size=4864,
    vocab_size=151936,
    tie_word_embeddings=True,
    rope_theta=1_000_000.0,
)


@dataclass
class BenchConfig:
    """Sizes of every benchmark. Defaults = `make bench` on a 2-core CPU (a few minutes).

    Attributes:
        device: "auto" (CUDA when visible), "cpu" or "cuda".
        threads: torch CPU threads; None = `choose_threads()`: all cores (2 on the course machine) when the
            machine is idle, 1 when other processes keep it busy (OpenMP threads that have to share a core
            with other work make every small op several times slower and the ratios meaningless).
        n_experts, r, lora_alpha, lora_dropout: adapter shape, identical for PAC-LoRA and LoRA.
        train_batch: rows of tiny-world SFT records per train step on the course model (~490 tokens each).
        train_rounds, train_repeats: interleaved rounds, and steps timed per round and contender.
        large_shape, large_batch, large_rounds: the larger random model of the train-step and decode ratios
            (on CUDA: Qwen2-0.5B-shaped, see `for_device`); its decode runs at the first decode batch only.
        decode_batches, decode_new_tokens, decode_rounds: decode tokens/s (greedy, forced length).
        gen_batches, gen_prompts, gen_new_tokens: replies/minute of sampled PAC-LoRA generation.
        quant_rounds: interleaved rounds of the 4-bit / full-precision train step (course and large model).
        peak_sizes: square matmul sizes tried for the machine's peak FLOP/s.
        profile: on a missed target, add the top operators of a torch.profiler run to the notes.
        course_time, test_time: also time `python -m socialalign_lib.course` / `pytest` (minutes).
        contention_size: world size of the notebook run alone and beside a CPU hog (`benchmarks.contention`).
    """

    device: str = "auto"
    threads: int | None = None
    seed: int = 0
    n_experts: int = 3
    r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.1
    warmup: int = 2
    train_batch: int = 8
    train_rounds: int = 7
    train_repeats: int = 2
    large_shape: ModelShape = field(default_factory=ModelShape)
    large_batch: int = 2
    large_rounds: int = 5
    decode_batches: tuple[int, ...] = (1, 8)
    decode_new_tokens: int = 32
    decode_rounds: int = 5
    gen_batches: tuple[int, ...] = (1, 8, 32)
    gen_prompts: int = 64
    gen_new_tokens: int = 48
    quant_rounds: int = 5
    peak_sizes: tuple[int, ...] = (1024, 2048, 3072)
    profile: bool = True
    course_time: bool = False
    test_time: bool = False
    contention_size: str = "course"

    @classmethod
    def quick(cls, **overrides) -> BenchConfig:
        """A smoke run (about a minute on 2 cores): fewer rounds, a smaller "large" model, shorter decodes."""
        base = dict(
            warmup=1,
            train_batch=4,
            train_rounds=3,
            train_repeats=1,
            large_shape=ModelShape(
                hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=704
            ),
            large_batch=2,
            large_rounds=3,
            decode_new_tokens=12,
            decode_rounds=3,
            gen_prompts=32,
            gen_new_tokens=16,
            quant_rounds=3,
            peak_sizes=(1024, 2048),
            contention_size="tiny",
        )
        return cls(**{**base, **overrides})

    def for_device(self, device: str) -> BenchConfig:
        """On CUDA: the "large" model is Qwen2-0.5B-shaped (unless a custom shape was set), batch >= 8, and
        the peak is measured on bigger matmuls."""
        if not device.startswith("cuda"):
            return self
        shape = QWEN2_05B_SHAPE if self.large_shape == ModelShape() else self.large_shape
        return replace(self, large_shape=shape, large_batch=max(self.large_batch, 8), peak_sizes=(4096, 8192))


# ---- device --------------------------------------------------------------------------------------


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def compute_dtype(device: str) -> torch.dtype:
    """fp32 on CPU (bf16 matmuls are several times slower there), bf16 on CUDA."""
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def choose_threads(threads: int | None) -> tuple[int, str]:
    """The CPU thread count to benchmark with, and why.

    `threads` given: used as is. None: every core when the machine is idle (1-minute load average
    <= 0.5), else 1 thread, because OpenMP threads spin-wait at every op's barrier
    and a thread that shares its core with other work stalls the others (measured here: 2 threads on a
    2-core machine at load 4-7 made a PAC-LoRA train step 6-8x slower than 1 thread, with per-round
    PAC-LoRA/LoRA ratios scattered from 0.9 to 4.4).
    """
    cores = os.cpu_count() or 1
    if threads is not None:
        return threads, "set by the caller"
    try:
        load = os.getloadavg()[0]
    except OSError:
        return cores, "all cores (load average unknown)"
    if load <= 0.5:
        return cores, f"all cores, the machine is idle (load average {load:.1f})"
    return (
        1,
        f"the machine is busy (load average {load:.1f} on {cores} cores): more OpenMP threads would contend",
    )


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_label(device: str, threads: int) -> str:
    """E.g. "cpu: Intel(R) Xeon(R) Processor, 2 threads" or "cuda: NVIDIA H100 80GB HBM3, bf16"."""
    if device.startswith("cuda"):
        return f"cuda: {torch.cuda.get_device_name(torch.device(device))}, bf16"
    return f"cpu: {cpu_name()}, {threads} thread{'' if threads == 1 else 's'} on {os.cpu_count()} cores"


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


# ---- timing --------------------------------------------------------------------------------------


def timed(fn: Callable[[], object], device: str, repeats: int = 1) -> Callable[[], float]:
    """A measurement: seconds per call of `fn`, averaged over `repeats` back-to-back calls."""

    def measure() -> float:
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        synchronize(device)
        return (time.perf_counter() - start) / repeats

    return measure


def interleave(
    measurements: dict[str, Callable[[], float]], rounds: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Run each measurement once per round, alternating the order every round.

    Args:
        measurements: name -> callable returning one measured value (seconds, or any quantity).
        rounds: rounds; every name gets `rounds` values.
        warmup: unrecorded calls of each measurement first (allocator, caches, lazy init).
    Returns:
        name -> list of `rounds` values, in round order (so values of one round can be paired).
    """
    for measure in measurements.values():
        for _ in range(warmup):
            measure()
    names = list(measurements)
    values: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names if i % 2 == 0 else names[::-1]:
            values[name].append(float(measurements[name]()))
    return values


def paired_ratio(values: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of `numerator / denominator` measured in the same round."""
    return statistics.median(a / b for a, b in zip(values[numerator], values[denominator]))


def spread(ratios: Sequence[float]) -> str:
    """ "min-max" of per-round values, for the notes."""
    return f"{min(ratios):.3g}-{max(ratios):.3g}"


def per_round_ratios(values: dict[str, list[float]], numerator: str, denominator: str) -> list[float]:
    return [a / b for a, b in zip(values[numerator], values[denominator])]


# ---- machine peak --------------------------------------------------------------------------------


def matmul_flops(device: str, dtype: torch.dtype, sizes: Sequence[int], repeats: int = 5) -> float:
    """Best median FLOP/s of square `torch.matmul` over `sizes` (2 n^3 FLOPs each): the machine's peak."""
    best = 0.0
    dev = torch.device(device)
    for n in sizes:
        a = torch.randn(n, n, device=dev, dtype=dtype)
        b = torch.randn(n, n, device=dev, dtype=dtype)
        values = interleave(
            {"mm": timed(lambda a=a, b=b: torch.matmul(a, b), device)}, rounds=repeats, warmup=1
        )
        best = max(best, 2 * n**3 / statistics.median(values["mm"]))
    return best


# ---- profiles ------------------------------------------------------------------------------------

#: Operators that are matrix products (their share of a step bounds what MFU can reach).
MATMUL_OPS = frozenset(
    {
        "aten::mm",
        "aten::addmm",
        "aten::bmm",
        "aten::baddbmm",
        "aten::matmul",
        "aten::linear",
        "aten::_scaled_dot_product_flash_attention_for_cpu",
        "aten::_scaled_dot_product_efficient_attention",
        "aten::_scaled_dot_product_flash_attention",
        "aten::_scaled_dot_product_cudnn_attention",
    }
)


@dataclass
class ProfileSummary:
    """Self time per operator of a profiled callable.

    Attributes:
        top: `(operator, share of total self time)` for the heaviest operators.
        matmul_share: share of self time spent in matrix products (`MATMUL_OPS`).
        total_s: total self time per call in seconds (CPU self time; on CUDA the operators' device time).
    """

    top: list[tuple[str, float]]
    matmul_share: float
    total_s: float

    def text(self) -> str:
        ops = ", ".join(f"{name} {share:.0%}" for name, share in self.top)
        return f"matmul ops {self.matmul_share:.0%} of self time; top: {ops}"


def profile_ops(fn: Callable[[], object], device: str, calls: int = 2, top: int = 5) -> ProfileSummary:
    """Profile `calls` calls of `fn` with torch.profiler and summarise self time by operator."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    cuda = device.startswith("cuda")
    if cuda:
        activities.append(ProfilerActivity.CUDA)
    fn()
    with profile(activities=activities) as prof:
        for _ in range(calls):
            fn()
        synchronize(device)
    # On CUDA: device time of the operators (CPU-side events), not of the kernels too, which would count twice.
    events = [e for e in prof.key_averages() if not cuda or e.device_type == torch.autograd.DeviceType.CPU]

    def self_time(event) -> float:
        if cuda:
            return float(getattr(event, "self_device_time_total", 0.0))
        return float(event.self_cpu_time_total)

    times = {event.key: self_time(event) for event in events}
    total = sum(times.values()) or 1.0
    ranked = sorted(times.items(), key=lambda item: item[1], reverse=True)[:top]
    matmul = sum(t for name, t in times.items() if name in MATMUL_OPS)
    return ProfileSummary([(name, t / total) for name, t in ranked], matmul / total, total / 1e6 / calls)
