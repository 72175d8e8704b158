"""Speed and memory figures of PAC-LoRA training and generation (`make bench` = `python -m benchmarks.run`).

Not timed tests: each module measures one figure and returns `Result` rows; `run.py` prints them as a
table and writes `figures/benchmarks.csv`. Machines are noisy (on a shared 2-core CPU, +-25% between
runs), so every comparison is a *ratio measured in one process*: the two contenders run interleaved,
round after round, and the figure is the median of the per-round ratios.

Modules (one figure each):
    common.py       `Result`, `BenchConfig`, interleaved timing, matmul peak, profiler summaries
    workloads.py    the course model, batches and prompts from the tiny world, random Qwen2 configs, adapters
    train_step.py   PAC-LoRA / LoRA train step time, and model FLOP utilisation (MFU)
    decode.py       PAC-LoRA / LoRA decode tokens/s with KV cache (gates cached at prefill)
    generation.py   batched PAC-LoRA generation: replies per minute at batch 1, 8, 32
    quant.py        4-bit NF4 vs full-precision base: bytes of weights, train step time
    wall_time.py    wall time of `python -m socialalign_lib.course` and of `pytest` (opt-in)
    run.py          command line, table, CSV
"""
