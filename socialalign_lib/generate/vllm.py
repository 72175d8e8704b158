"""Bulk generation with vLLM for the plain-LoRA and base-model baselines (optional; vLLM is not a dependency).

Why only those: vLLM serves standard LoRA adapters (``LoRARequest``) but knows nothing of PAC-LoRA's gated experts
and spans, so PAC-LoRA always generates through :func:`~.decode.generate_replies`. The output is the same
``REPLY_COLUMNS`` frame and the same resumable JSON Lines file (:class:`~.reply_file.ReplyFile`), so the evaluation
code cannot tell the backends apart. Prompts are rendered by the same chat code as training (token ids handed to
vLLM, no re-tokenisation), and each request carries its own seed derived from (case, variant, seed), so a reply
does not depend on the batch. vLLM has no option to exempt the stop tokens from the repetition penalty: this
backend applies it as vLLM does (the official behaviour, ``GenerationConfig.penalize_eos=True``), and says so when
asked otherwise.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from socialalign_lib.build.records.chat import ChatConfig
from socialalign_lib.train.config import SocialLLMConfig
from socialalign_lib.train.data import as_records, batched
from socialalign_lib.train.run_folder import ADAPTER_DIR, SocialLLMError, read_run_state

from .decode import prompt_ids_with_spans
from .reply_file import ReplyFile, check_records, reply_key, reply_row
from .sampling import GenerationConfig, stop_token_ids

__all__ = ["generate_replies_vllm", "row_seed", "sampling_params"]

log = logging.getLogger(__name__)


def _import_vllm():
    try:
        import vllm
        from vllm.lora.request import LoRARequest
    except ImportError as exc:  # pragma: no cover - the message is the point
        raise ImportError(
            "the vLLM backend needs vLLM on a CUDA machine: `pip install vllm` (not a course "
            "dependency); socialllm.generate_replies does the same job without it"
        ) from exc
    return vllm, LoRARequest


def row_seed(record: dict[str, Any], seed: int) -> int:
    """A 31-bit seed per (case, variant, seed): stable across runs, batches and processes."""
    return int.from_bytes(hashlib.sha256(f"{reply_key(record)}|{seed}".encode()).digest()[:4], "big") >> 1


def sampling_params(vllm: Any, gen: GenerationConfig, eos_ids: list[int], seed: int) -> Any:
    """``GenerationConfig`` → ``vllm.SamplingParams`` (greedy = temperature 0, as vLLM spells it)."""
    return vllm.SamplingParams(
        temperature=gen.temperature if gen.do_sample else 0.0,
        top_p=gen.top_p if gen.do_sample else 1.0,
        top_k=gen.top_k if gen.do_sample and gen.top_k else -1,
        repetition_penalty=gen.repetition_penalty,
        max_tokens=gen.max_new_tokens,
        stop_token_ids=eos_ids,
        seed=seed,
        skip_special_tokens=True,
    )


def generate_replies_vllm(
    run_dir: str | Path,
    records: Any,
    gen: GenerationConfig | None = None,
    out_path: str | Path | None = None,
    chat_config: ChatConfig | None = None,
    engine_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Replies of a finished ``lora`` or ``base`` run (a ``train_socialllm`` output folder) through vLLM.

    Args:
        run_dir: the run folder; its state file names the base model and the method.
        records, out_path, chat_config: as in :func:`~.decode.generate_replies` (resume by (case_id, variant);
            one writer per replies file).
        engine_kwargs: extra ``vllm.LLM`` arguments, e.g. ``tensor_parallel_size=4``, ``gpu_memory_utilization``.
    """
    from transformers import AutoTokenizer

    with ReplyFile.open(out_path) as replies:
        run_dir = Path(run_dir)
        state = read_run_state(run_dir)
        if not state or not state.get("finished"):
            raise SocialLLMError(f"{run_dir}: no finished train_socialllm run here")
        cfg = SocialLLMConfig.from_dict(state["config"])
        if cfg.method == "pac_lora":
            raise SocialLLMError(
                f"{run_dir}: vLLM cannot run PAC-LoRA (gated experts with spans are not a LoRA); "
                "use socialllm.generate_replies"
            )
        gen = gen or GenerationConfig()
        if not gen.penalize_eos and gen.repetition_penalty != 1.0:
            log.warning(
                "vLLM applies the repetition penalty to the stop tokens too (penalize_eos=True behaviour)"
            )
        vllm, LoRARequest = _import_vllm()
        chat = chat_config or ChatConfig()
        rows = as_records(records)
        check_records(rows)
        todo = replies.pending(rows)
        tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
        eos_ids = stop_token_ids(None, tokenizer)
        lora = None
        if cfg.method == "lora":
            lora = LoRARequest("socialllm", 1, str(run_dir / ADAPTER_DIR))
        llm = vllm.LLM(
            model=cfg.base_model,
            enable_lora=lora is not None,
            max_lora_rank=max(8, cfg.r),
            seed=gen.seed,
            **(engine_kwargs or {}),
        )
        # batches only bound what is lost on interruption: vLLM schedules every prompt of a call at once
        chunk = max(gen.batch_size, 256)
        bar = tqdm(total=len(todo), desc="generate (vLLM)", disable=not progress or not todo)
        for batch in batched(todo, chunk):
            prompts = [{"prompt_token_ids": prompt_ids_with_spans(tokenizer, r, chat)[0]} for r in batch]
            params = [sampling_params(vllm, gen, eos_ids, row_seed(r, gen.seed)) for r in batch]
            outputs = llm.generate(prompts, params, lora_request=lora, use_tqdm=False)
            replies.append(
                batch, [reply_row(r, o.outputs[0].text.strip(), [], []) for r, o in zip(batch, outputs)]
            )
            bar.update(len(batch))
        bar.close()
        return replies.frame(rows)
