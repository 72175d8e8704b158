"""The embedded base model folder: tokenizer + tiny model + pre-training, saved atomically with a model card.

Why it exists: :func:`build_base_model` is the one recipe behind ``data/socialalign-tiny`` (``make model``, i.e.
``python -m socialalign_lib.models --rebuild``, :func:`main`); with the same texts, seed and thread count it rebuilds
the same bytes, so the committed adapters trained on it stay valid.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from .load import resolve_device
from .pretrain import PretrainConfig, background_corpus, pack_texts, pretrain, world_corpus
from .tiny import TinyModelConfig, build_tiny_model
from .tokenizer import train_tokenizer


def _model_card(info: dict[str, Any]) -> str:
    m, p = info["model"], info["pretrain"]
    return f"""# {info["name"]}

The socialalign-course base model: a {m["arch"]} causal LM with {info["n_parameters"]:,} parameters, pre-trained
from scratch on {info["n_texts"]:,} Chinese texts ({info["n_tokens"]:,} tokens): the course world's news and posts, and
reactions of *other* users to *other* news from background worlds (`models.background_corpus`), with a byte-level
BPE tokenizer of {info["vocab_size"]:,} tokens trained on the same texts.

It exists because nothing is downloaded from a model hub in the embedded setting. Like a real base model it has
read strangers reacting to news in the course's prompt format, never the course's own users, topics or replies:
fine-tuning (LoRA / PAC-LoRA) teaches it those.

- shape: {m["num_hidden_layers"]} layers, hidden {m["hidden_size"]}, {m["num_attention_heads"]} heads \
({m["num_key_value_heads"]} kv), intermediate {m["intermediate_size"]}, context {m["max_position_embeddings"]}
- pre-training: {info["steps"]} steps of {p["batch_size"]}×{p["block_size"]} tokens, AdamW, peak lr \
{p["learning_rate"]}, cosine; seed {info["seed"]}
- loss: {info["first_loss"]:.3f} → {info["final_loss"]:.3f} (mean of the last 10 steps)
- chat template: ChatML (`<|im_start|>role\\n…<|im_end|>\\n`); eos and pad `<|endoftext|>`

Rebuild: `make model` (`python -m socialalign_lib.models --rebuild`). Load: `socialalign_lib.models.load_base_model`.
Full configuration: `build_info.json`.
"""


def build_base_model(
    texts: Sequence[str],
    out_dir: str | os.PathLike,
    vocab_size: int = 4000,
    model_cfg: TinyModelConfig | None = None,
    pretrain_cfg: PretrainConfig | None = None,
    *,
    overwrite: bool = False,
    name: str = "socialalign-tiny",
    device: str = "cpu",
) -> Path:
    """Train the tokenizer, build and pre-train the model, save both (safetensors) with a card and
    ``build_info.json`` into ``out_dir``; return ``out_dir``.

    Atomic: everything is written to a temporary sibling folder that is renamed into place at the end, so an
    interrupted build never leaves a half-written model where notebooks look for one. ``pretrain_cfg.seed``
    seeds both the initialisation and the data order: with the same texts, seed and torch thread count, two
    builds on one machine give identical weights. An existing ``out_dir`` is replaced only with ``overwrite``.
    ``device`` ("cpu", "cuda", "auto") is where pre-training runs; CPU is the reproducible default.
    """
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True to rebuild it")
    texts = [t for t in texts if t]
    model_cfg = model_cfg or TinyModelConfig()
    pretrain_cfg = pretrain_cfg or PretrainConfig()

    tokenizer = train_tokenizer(texts, vocab_size, model_max_length=model_cfg.max_position_embeddings)
    model = build_tiny_model(tokenizer, model_cfg, seed=pretrain_cfg.seed).to(resolve_device(device))
    blocks = pack_texts(tokenizer, texts, pretrain_cfg.block_size)
    start = time.perf_counter()
    losses = pretrain(model, tokenizer, blocks, pretrain_cfg)
    seconds = time.perf_counter() - start

    corpus_hash = hashlib.sha256()
    for t in texts:
        corpus_hash.update(t.encode("utf-8") + b"\0")
    import tokenizers
    import transformers

    info = {
        "name": name,
        "model": asdict(model_cfg),
        "pretrain": {k: v for k, v in asdict(pretrain_cfg).items() if k != "progress"},
        "seed": pretrain_cfg.seed,
        "vocab_size": len(tokenizer),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "n_texts": len(texts),
        "n_tokens": int(blocks.numel()),
        "corpus_sha256": corpus_hash.hexdigest(),
        "steps": len(losses),
        "first_loss": losses[0] if losses else None,
        "final_loss": sum(losses[-10:]) / len(losses[-10:]) if losses else float("nan"),
        "seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / max(1, len(losses)), 4),
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
    }

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.to("cpu").save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "build_info.json").write_text(
            json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (tmp / "README.md").write_text(_model_card(info), encoding="utf-8")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out


def main(argv: Sequence[str] | None = None) -> Path | None:
    from socialalign_lib.paths import EMBEDDED_MODEL

    ap = argparse.ArgumentParser(description="Build the course's base model from the embedded world.")
    ap.add_argument("--rebuild", action="store_true", help="replace an existing model folder")
    ap.add_argument("--out", type=Path, default=EMBEDDED_MODEL)
    ap.add_argument("--size", default="course", help="world size whose text the model learns")
    ap.add_argument("--seed", type=int, default=0, help="initialisation and data order")
    ap.add_argument("--vocab-size", type=int, default=4000)
    ap.add_argument("--steps", type=int, default=PretrainConfig.max_steps)
    ap.add_argument("--world-seed", type=int, default=0)
    ap.add_argument(
        "--no-background",
        action="store_true",
        help="pre-train on the course world's text only (no background reactions: the old model)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads, fixed for reproducible weights; 1 is fastest for this model on shared cores",
    )
    args = ap.parse_args(argv)
    if args.out.exists() and not args.rebuild:
        print(f"{args.out} exists (use --rebuild to replace it)")
        return None
    from socialalign_lib.world.generate import generate_world

    torch.set_num_threads(args.threads)
    world = generate_world(size=args.size, seed=args.world_seed)
    texts = world_corpus(world) + ([] if args.no_background else background_corpus(world))
    out = build_base_model(
        texts,
        args.out,
        args.vocab_size,
        pretrain_cfg=PretrainConfig(max_steps=args.steps, seed=args.seed),
        overwrite=True,
    )
    info = json.loads((out / "build_info.json").read_text(encoding="utf-8"))
    print(
        f"{out}: {info['n_parameters']:,} parameters, vocab {info['vocab_size']}, {info['steps']} steps, "
        f"loss {info['first_loss']:.2f} → {info['final_loss']:.2f}, {info['seconds_per_step']:.3f} s/step"
    )
    return out
