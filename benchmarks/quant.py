"""4-bit base weights (bitsandbytes NF4, QLoRA's recipe) against the full-precision base.

Memory is counted, not sampled from the allocator: the bytes of every tensor that holds the weights,
so NF4 pays for its packed 4-bit codes *and* its quantisation state (per-block absmax, double-quantised
to uint8 with their own fp32 absmax, and the 16- and 256-entry lookup tables of each layer), which is
what `save_pretrained` writes. Two figures: the quantised linear layers alone (what NF4 replaces) and
the whole model (embeddings and norms stay in full precision, which dominates a tiny model).

Speed: the same PAC-LoRA train step on the NF4 base and on the full-precision base (fp32 on CPU,
bf16 on CUDA), interleaved. On CPU bitsandbytes dequantises each weight at every use, so 4-bit is a
memory saving paid in time. Gradient checkpointing (which `prepare_model_for_kbit_training` turns on)
is left off in both so that only the weight format differs.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import torch
from torch import nn

from socialalign_lib.models import load_base_model

from .common import (
    BenchConfig,
    Result,
    compute_dtype,
    interleave,
    paired_ratio,
    per_round_ratios,
    spread,
    timed,
)
from .train_step import make_train_step
from .workloads import with_pac_lora


def tensor_bytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def quant_state_bytes(weight: torch.Tensor) -> int:
    """Bytes of the tensors of a bitsandbytes weight's quantisation state (0 for a plain weight)."""
    state = getattr(weight, "quant_state", None)
    if state is None:
        return 0
    return sum(tensor_bytes(v) for v in state.as_dict(packed=False).values() if torch.is_tensor(v))


def quantized_linear_names(model: nn.Module) -> list[str]:
    """Names of the bitsandbytes 4-bit linear layers of a model loaded with `load_in_4bit`."""
    import bitsandbytes as bnb

    return [name for name, module in model.named_modules() if isinstance(module, bnb.nn.Linear4bit)]


def linear_bytes(model: nn.Module, names: list[str]) -> int:
    """Bytes of weight, bias and quantisation state of the named linear layers."""
    modules = dict(model.named_modules())
    total = 0
    for name in names:
        module = modules[name]
        total += tensor_bytes(module.weight) + quant_state_bytes(module.weight)
        if module.bias is not None:
            total += tensor_bytes(module.bias)
    return total


def model_bytes(model: nn.Module) -> int:
    """Bytes of all parameters and buffers (tied tensors once) plus quantisation states."""
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        total += tensor_bytes(tensor) + quant_state_bytes(tensor)
    return total


def bench_quant(
    cfg: BenchConfig,
    folder: str | Path,
    name: str,
    device: str,
    label: str,
    batch: dict[str, torch.Tensor] | None,
) -> list[Result]:
    """Bytes of NF4 vs full-precision base weights of the model in `folder`; with `batch`, the train step ratio."""
    dtype = compute_dtype(device)
    dtype_name = str(dtype).removeprefix("torch.")
    full, _ = load_base_model(folder, device=device, dtype=dtype)
    nf4, _ = load_base_model(folder, device=device, load_in_4bit=True)
    names = quantized_linear_names(nf4)
    if not names:
        raise RuntimeError(f"load_in_4bit produced no Linear4bit layers for {folder}")
    full_linear, nf4_linear = linear_bytes(full, names), linear_bytes(nf4, names)
    full_model, nf4_model = model_bytes(full), model_bytes(nf4)
    how = (
        f"{len(names)} quantised linear layers (NF4, double quant, blocksize 64; LM head and embeddings kept)"
    )
    results = [
        Result(
            "quant4bit",
            f"linear_weight_bytes_{dtype_name}[{name}]",
            full_linear,
            "bytes",
            device=label,
            notes=how,
        ),
        Result(
            "quant4bit",
            f"linear_weight_bytes_nf4[{name}]",
            nf4_linear,
            "bytes",
            device=label,
            notes=f"{8 * nf4_linear / sum(dict(full.named_modules())[n].weight.numel() for n in names):.2f} bits per weight "  # noqa: E501
            "incl. quantisation state",
        ),
        Result(
            "quant4bit",
            f"nf4_over_{dtype_name}_linear_bytes[{name}]",
            nf4_linear / full_linear,
            "x",
            device=label,
            notes=how,
        ),
        Result(
            "quant4bit",
            f"nf4_over_{dtype_name}_model_bytes[{name}]",
            nf4_model / full_model,
            "x",
            device=label,
            notes=f"whole model: {full_model / 2**20:.2f} MiB -> {nf4_model / 2**20:.2f} MiB (parameters, buffers, quant state)",  # noqa: E501
        ),
    ]
    if batch is not None:
        steps = {
            "nf4": make_train_step(with_pac_lora(nf4, cfg, copy_base=False), batch, use_spans=True),
            "full": make_train_step(with_pac_lora(full, cfg, copy_base=False), batch, use_spans=True),
        }
        values = interleave(
            {key: timed(fn, device) for key, fn in steps.items()}, cfg.quant_rounds, warmup=cfg.warmup
        )
        ratio = paired_ratio(values, "nf4", "full")
        rows, seq = batch["input_ids"].shape
        results.append(
            Result(
                "quant4bit",
                f"nf4_over_{dtype_name}_step_time[{name}]",
                ratio,
                "x",
                device=label,
                notes=(
                    f"PAC-LoRA train step, batch {rows}x{seq}, no gradient checkpointing; {dtype_name} "
                    f"{statistics.median(values['full']) * 1e3:.0f} ms vs NF4 {statistics.median(values['nf4']) * 1e3:.0f} ms; "  # noqa: E501
                    f"median of {cfg.quant_rounds} interleaved rounds, per-round ratios "
                    f"{spread(per_round_ratios(values, 'nf4', 'full'))}"
                ),
            )
        )
    return results


def saved_model_folder(model: nn.Module, tokenizer, root: str | None = None) -> tempfile.TemporaryDirectory:
    """Save a model built in memory (with the course tokenizer) so `load_base_model` can load it in 4-bit."""
    folder = tempfile.TemporaryDirectory(prefix="bench-model-", dir=root)
    model.save_pretrained(folder.name)
    tokenizer.save_pretrained(folder.name)
    return folder
