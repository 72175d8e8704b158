"""``socialalign generate``: one reply per record, appended batch by batch to a JSONL file (HF or vLLM backend);
a re-run skips the records already there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from socialalign_lib.generate.paths import replies_path

from .common import CommandError
from .inputs import load_records


@dataclass
class GenerateOptions:
    run_dir: str  # a finished `socialalign train` run folder (socialllm.json + adapter/)
    dataset: str  # `socialalign build` output folder, a saved DatasetDict, or a records .jsonl file
    split: str = "test_user"  # split whose records get replies
    variant: str | None = None  # prompt variant (default: the one the run was trained on)
    gate_mode: str | None = (
        None  # PAC-LoRA ablation at inference: uniform, uniform_a, uniform_b (None: learned)
    )
    out: str | None = (
        None  # replies JSONL (default <run-dir>/replies/<split>-<variant>[-<gate-mode>]-seed<seed>.jsonl)
    )
    limit: int | None = None  # only the first N records (a later run without it completes the rest)
    shard: int = 0  # this process's shard of the records (with --num-shards: one process per GPU)
    num_shards: int = 1  # split the records into this many shards (records shard, shard+n, shard+2n, ...)
    backend: Literal["transformers", "vllm"] = (
        "transformers"  # vllm: plain LoRA / base runs only, needs `pip install vllm` on CUDA
    )


def cmd_generate(c: dict[str, Any]) -> dict[str, Any]:
    """One reply per record (``socialllm.generate_replies``), appended batch by batch to a JSONL file; a re-run
    skips the records already there (resume after an interruption, or after ``--limit``)."""
    from socialalign_lib.build.records.template import VARIANTS
    from socialalign_lib.data.append import exclusive_output
    from socialalign_lib.generate.decode import generate_replies
    from socialalign_lib.train.config import SocialLLMConfig
    from socialalign_lib.train.run_folder import read_finished_state, verify_adapter
    from socialalign_lib.train.socialllm import load_socialllm

    gen, opt = c["gen"], c["generate"]
    if not 0 <= opt.shard < opt.num_shards:
        raise CommandError(f"--shard must be in [0, {opt.num_shards}), got {opt.shard}")
    if opt.variant is not None and opt.variant not in VARIANTS:
        raise CommandError(f"--variant {opt.variant!r}: choose one of {list(VARIANTS)}")
    state = read_finished_state(
        opt.run_dir
    )  # cheap checks first: the model loads only once all inputs are good
    variant = opt.variant or SocialLLMConfig.from_dict(state["config"]).variant
    records = load_records(opt.dataset, opt.split)
    n_split = len(records)
    records = records.filter(lambda v: v == variant, input_columns="variant")
    if not len(records):
        raise CommandError(
            f"{opt.dataset}: split {opt.split!r} has no records of variant {variant!r} "
            f"({n_split} records in the split)"
        )
    if opt.num_shards > 1:
        records = records.select(range(opt.shard, len(records), opt.num_shards))
    if opt.limit is not None:
        records = records.select(range(min(opt.limit, len(records))))
    out = (
        Path(opt.out)
        if opt.out
        else replies_path(opt.run_dir, opt.split, variant, gen.seed, opt.gate_mode, opt.shard, opt.num_shards)
    )
    if out.resolve().is_relative_to(Path(opt.dataset).resolve()):
        raise CommandError(f"--out {out}: inside the input dataset {opt.dataset}; write replies elsewhere")
    with exclusive_output(out, "replies file"):  # a second writer is refused now, before a model is loaded
        pass  # (generate_replies takes the lock again for the whole run)
    before = _count_lines(out)
    if opt.backend == "vllm":
        from socialalign_lib.generate.vllm import generate_replies_vllm

        if SocialLLMConfig.from_dict(state["config"]).method != "base":
            verify_adapter(opt.run_dir, state)
        frame = generate_replies_vllm(opt.run_dir, records, gen, out_path=out, progress=c["run"].progress)
    else:
        run = load_socialllm(opt.run_dir)
        frame = generate_replies(
            run.model,
            run.tokenizer,
            records,
            gen,
            out_path=out,
            progress=c["run"].progress,
            gate_mode=opt.gate_mode,
        )
    return {
        "out": str(out),
        "records": len(frame),
        "generated_now": _count_lines(out) - before,
        "already_done": before,
    }


def _count_lines(path: Path) -> int:
    """Complete JSONL lines (a torn last line, left by a kill during a write, has no newline and is not counted)."""
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def _groups_generate() -> dict[str, type]:
    from socialalign_lib.generate.sampling import GenerationConfig

    return {"generate": GenerateOptions, "gen": GenerationConfig}


GENERATION_HELP = {
    "gen.do_sample": "sample (official inference) instead of greedy decoding",
    "gen.temperature": "softmax temperature when sampling (official 0.7)",
    "gen.top_p": "nucleus sampling mass (official 0.9)",
    "gen.top_k": "sample among the k likeliest tokens (official 20)",
    "gen.repetition_penalty": "penalty on tokens already in the prompt or reply (official 1.2; 1.0 = none)",
    "gen.max_new_tokens": "longest reply in tokens (official 256)",
}
"""Help for ``socialllm.GenerationConfig`` fields its class does not document."""
