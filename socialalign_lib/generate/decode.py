"""The decode core: records → prompt ids with spans → left-padded batches → sampled replies (and their gates).

:func:`generate_replies` is the one HF generation path, for the base model, plain LoRA and PAC-LoRA alike;
:func:`compute_gates` runs the same prompts through one prefill to read the PAC-LoRA gates without generating.
Prompts are the records' chat prompts as in training (``build.records.prompt_ids_with_spans``); the vLLM backend
(:mod:`.vllm`) renders them with the same :func:`prompt_ids_with_spans` and writes the same replies file
(:class:`~.reply_file.ReplyFile`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import GenerationConfig as HFGenerationConfig
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from socialalign_lib.build.records import ChatConfig, prompt_ids_with_spans
from socialalign_lib.pac_lora import is_pac_model, leading_pad_counts, mean_gates, use_gate_mode
from socialalign_lib.train.config import model_chat_config
from socialalign_lib.train.data import as_records, batched
from socialalign_lib.train.socialllm import model_device

from .reply_file import ReplyFile, check_records, reply_key, reply_row
from .sampling import EosExemptRepetitionPenalty, GenerationConfig, RowSeededGumbel, stop_token_ids

__all__ = [
    "REPLACEMENT_CHAR",
    "compute_gates",
    "decode_complete",
    "generate_replies",
    "layer_mean_gates",
    "left_pad",
    "prompt_ids_with_spans",
]

REPLACEMENT_CHAR = "\ufffd"
_MAX_CUT_TOKENS = 3  # a UTF-8 character has at most 4 bytes: at most 3 of them end a cut-off generation


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[batch, width]`` ids and attention mask, padded on the left (generation continues every row at the end)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
        mask[i, width - len(p) :] = 1
    return ids, mask


def layer_mean_gates(model: nn.Module, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Gates of the latest prefill averaged over adapted layers (``pac_lora.mean_gates``) as numpy arrays
    ``([batch, n], [batch, n])``, checked to cover the ``batch`` rows just run."""
    gate_a, gate_b = mean_gates(model)
    if gate_a.shape[0] != batch:
        raise RuntimeError(f"gates cover {gate_a.shape[0]} rows, expected {batch}")
    return gate_a.numpy(), gate_b.numpy()


def decode_complete(tokenizer: Any, ids: Sequence[int] | torch.Tensor) -> str:
    """Generated token ids → text that ends on a complete character and holds no U+FFFD.

    A byte-level BPE (Qwen, GPT-2) spends up to four tokens on one character (emoji, rare CJK). When generation
    stops at ``max_new_tokens`` between them, ``tokenizer.decode`` shows the unfinished bytes as U+FFFD. So the
    last tokens are dropped, at most three, until the text ends on a complete character. A U+FFFD that remains
    is a byte sequence the model wrote that is no character at all (a lead byte followed by ASCII): it is
    removed, since the course's text never holds U+FFFD (``clean.clean_text`` strips export damage).
    Special tokens (end of text, pads) are skipped, as ``skip_special_tokens=True`` does.
    """
    special = set(tokenizer.all_special_ids)
    row = [int(i) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids) if int(i) not in special]
    text = tokenizer.decode(row, skip_special_tokens=True)
    if text.endswith(REPLACEMENT_CHAR):
        for cut in range(1, min(_MAX_CUT_TOKENS, len(row)) + 1):
            shorter = tokenizer.decode(row[:-cut], skip_special_tokens=True)
            if not shorter.endswith(REPLACEMENT_CHAR):
                text = shorter
                break
    return text.replace(REPLACEMENT_CHAR, "")


def _pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


@torch.no_grad()
def generate_replies(
    model: Any,
    tokenizer: Any,
    records: Any,
    gen: GenerationConfig | None = None,
    out_path: str | Path | None = None,
    progress: bool = True,
    gate_mode: str | None = None,
    chat_config: ChatConfig | None = None,
) -> pd.DataFrame:
    """One generated reply per record, with the PAC-LoRA gate weights that produced it.

    Prompts are the records' chat prompts (as in training, without the answer), batched ``gen.batch_size`` at a
    time with **left** padding; the spans stay in each row's own coordinates and ``pac_lora.place_spans`` shifts
    them by the row's leading pads. The repetition penalty ignores those pads (transformers'
    ``prompt_ignore_length``) and, unless ``gen.penalize_eos``, the stop tokens (:class:`EosExemptRepetitionPenalty`);
    sampling noise is seeded per row (:class:`RowSeededGumbel`), so a row's reply does not depend on its batch —
    greedy replies are batch-invariant up to float rounding of padded matmuls.

    Args:
        model: base model, LoRA ``PeftModel`` or PAC-LoRA ``PeftModel`` (a ``TrainedSocialLLM.model``).
        records: ``datasets.Dataset`` or dicts with ``case_id``, ``instruction``, ``user_span``, ``news_span``
            (and ``output``, ``sentiment``, ``topic_id``, … which are copied to the result).
        out_path: JSON Lines file (:class:`~.reply_file.ReplyFile`); each finished batch is appended atomically and
            a re-run skips the (case_id, variant) pairs already there, so an interrupted run resumes without
            duplicates. The file is locked while this runs: a second writer gets ``OutputLockedError``. Rows
            already in the file are trusted as they are: keep one file per model and decoding config
            (``generate.paths``).
        gate_mode: evaluate a PAC-LoRA model with its gates switched (e.g. ``"uniform"``), see
            ``pac_lora.use_gate_mode``.
        chat_config: how prompts are rendered (default: ``model_chat_config``, the spans the model was trained
            with, the course system prompt).
    Returns:
        ``DataFrame`` with ``REPLY_COLUMNS``, one row per record in input order (rows read back from
        ``out_path`` included). ``gate_a`` / ``gate_b``: gate weights averaged over layers, ``[]`` without PAC-LoRA.
    """
    with ReplyFile.open(out_path) as replies:
        gen = gen or GenerationConfig()
        chat = chat_config or model_chat_config(model)
        rows = as_records(records)
        check_records(rows)
        todo = replies.pending(rows)
        pac = is_pac_model(model)
        device = model_device(model)
        pad_id = _pad_id(tokenizer)
        eos_ids = stop_token_ids(model, tokenizer)
        # Every decoding knob is explicit: the model's own generation_config (e.g. Qwen's top_k=20, penalty 1.05)
        # must not leak in, and the sampling is done by our processors on top of greedy selection.
        hf_gen = HFGenerationConfig(
            max_new_tokens=gen.max_new_tokens,
            do_sample=False,
            num_beams=1,
            repetition_penalty=1.0,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            eos_token_id=eos_ids,
            pad_token_id=pad_id,
        )
        bar = tqdm(total=len(todo), desc="generate", disable=not progress or not todo)
        with use_gate_mode(model, gate_mode if pac else _checked_non_pac_mode(model, gate_mode)):
            for batch in batched(todo, gen.batch_size):
                encoded = [prompt_ids_with_spans(tokenizer, r, chat) for r in batch]
                ids, mask = left_pad([e[0] for e in encoded], pad_id)
                processors = LogitsProcessorList()
                if gen.repetition_penalty != 1.0:
                    exempt = [] if gen.penalize_eos else eos_ids
                    ignore = leading_pad_counts(mask)
                    processors.append(
                        EosExemptRepetitionPenalty(
                            gen.repetition_penalty, exempt, prompt_ignore_length=ignore
                        )
                    )
                if gen.do_sample:
                    processors.extend(
                        [
                            TemperatureLogitsWarper(gen.temperature),
                            TopKLogitsWarper(gen.top_k),
                            TopPLogitsWarper(gen.top_p),
                            RowSeededGumbel([reply_key(r) for r in batch], gen.seed, ids.shape[1]),
                        ]
                    )
                kwargs: dict[str, Any] = {
                    "input_ids": ids.to(device),
                    "attention_mask": mask.to(device),
                    "generation_config": hf_gen,
                    "logits_processor": processors,
                }
                if pac:
                    kwargs["pac_spans"] = torch.tensor([e[1] for e in encoded], dtype=torch.long)
                output = model.generate(**kwargs)
                texts = [decode_complete(tokenizer, row) for row in output[:, ids.shape[1] :]]
                if pac:
                    gate_a, gate_b = layer_mean_gates(model, len(batch))
                else:
                    gate_a = gate_b = np.zeros((len(batch), 0))
                replies.append(
                    batch, [reply_row(r, t.strip(), a, b) for r, t, a, b in zip(batch, texts, gate_a, gate_b)]
                )
                bar.update(len(batch))
        bar.close()
        return replies.frame(rows)


def _checked_non_pac_mode(model: nn.Module, mode: str | None) -> str | None:
    if mode not in (None, "learned"):
        raise ValueError(
            f"gate_mode={mode!r} needs a PAC-LoRA model, got {type(model).__name__} without PAC-LoRA layers"
        )
    return None


@torch.no_grad()
def compute_gates(
    model: Any,
    tokenizer: Any,
    records: Any,
    batch_size: int = 16,
    progress: bool = True,
    chat_config: ChatConfig | None = None,
    gate_mode: str | None = None,
) -> pd.DataFrame:
    """Gate weights of a PAC-LoRA model for each record's prompt, from one prefill (no generation): cheap enough
    to map the gates of a whole split for the interpretability heatmaps.

    Returns:
        ``DataFrame`` with ``case_id, topic_id, user_id, category, split, variant, gate_a, gate_b`` (lists of
        ``n_experts`` floats averaged over layers; each sums to 1), in input order.
    """
    if not is_pac_model(model):
        raise ValueError(f"compute_gates needs a PAC-LoRA model, got {type(model).__name__}")
    chat = chat_config or model_chat_config(model)
    rows = as_records(records)
    check_records(rows)
    device = model_device(model)
    pad_id = _pad_id(tokenizer)
    out = []
    with use_gate_mode(model, gate_mode):
        for batch in tqdm(list(batched(rows, batch_size)), desc="gates", disable=not progress):
            encoded = [prompt_ids_with_spans(tokenizer, r, chat) for r in batch]
            ids, mask = left_pad([e[0] for e in encoded], pad_id)
            spans = torch.tensor([e[1] for e in encoded], dtype=torch.long)
            model(input_ids=ids.to(device), attention_mask=mask.to(device), pac_spans=spans, logits_to_keep=1)
            gate_a, gate_b = layer_mean_gates(model, len(batch))
            for rec, a, b in zip(batch, gate_a, gate_b):
                ids_of = {
                    k: rec.get(k) for k in ("case_id", "topic_id", "user_id", "category", "split", "variant")
                }
                out.append(ids_of | {"gate_a": a.tolist(), "gate_b": b.tolist()})
    return pd.DataFrame(out)
