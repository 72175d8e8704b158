"""Pre-training the course model: its corpus (the course world's text plus background reactions) and the loop.

Why it exists: the "zero-shot base model" baseline and every fine-tune start from a language model of Weibo text,
not from noise. :func:`world_corpus` and :func:`background_corpus` choose what the model reads (never a held-out
reply, never a course topic from the background), :func:`pretrain` is a plain-torch causal-LM loop on packed blocks.
Measurements behind the defaults are in docs/design.md#measurements-behind-the-models-defaults (not here).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .tokenizer import IM_END, IM_START


@dataclass
class PretrainConfig:
    """Knobs of :func:`pretrain`. Defaults: 3,000 steps of 4×512 tokens (~6 M tokens, ~1.5 passes over the course
    world's text plus :func:`background_corpus`), ~20 minutes on one CPU thread; why 3,000 steps and this size
    (docs/design.md#measurements-behind-the-models-defaults). Blocks of 512 tokens hold a whole SocialAlign record
    (~480 tokens), so the model sees a reply together with the news and the user it answers.

    A high peak learning rate suits a model this small; warm-up then cosine decay to ``min_lr_ratio`` × peak.
    ``seed`` fixes the block order (and, in :func:`build_base_model`, the initialisation).
    """

    block_size: int = 512
    batch_size: int = 4
    max_steps: int = 3000
    learning_rate: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 20
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    max_grad_norm: float = 1.0
    seed: int = 0
    progress: bool = True


def pack_texts(tokenizer: Any, texts: Iterable[str], block_size: int) -> torch.Tensor:
    """Token blocks ``[n_blocks, block_size]`` (int64): every text encoded, followed by the eos token,
    concatenated and cut into equal blocks (the ragged tail is dropped). Packing wastes no compute on padding;
    the eos between texts teaches the model where a post ends."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for ids in tokenizer([t for t in texts if t], add_special_tokens=False)["input_ids"]:
        stream.extend(ids)
        stream.append(eos)
    n_blocks = len(stream) // block_size
    if n_blocks == 0:
        raise ValueError(f"{len(stream)} tokens of text are less than one block of {block_size}")
    return torch.tensor(stream[: n_blocks * block_size], dtype=torch.long).view(n_blocks, block_size)


def cosine_lr(step: int, cfg: PretrainConfig) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up, then cosine from the peak to ``min_lr_ratio`` × peak."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    floor = cfg.learning_rate * cfg.min_lr_ratio
    return floor + (cfg.learning_rate - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def pretrain(
    model: Any, tokenizer: Any, texts: Sequence[str] | torch.Tensor, cfg: PretrainConfig | None = None
) -> list[float]:
    """Causal-LM pre-training on packed ``texts``, in place; returns the loss of every step.

    Plain torch so the loop fits on one screen: blocks ``[batch, block_size]`` drawn without replacement from a
    seeded permutation (reshuffled each epoch), ``labels = input_ids`` (the model shifts them), AdamW without
    decay on biases and norms, warm-up + cosine schedule, gradient clipping. Runs on the model's device;
    ``texts`` may also be pre-packed blocks from :func:`pack_texts`. Leaves the model in eval mode.
    On CPU, one torch thread is often fastest at this size (OpenMP oversubscription; measured in
    docs/design.md#measurements-behind-the-models-defaults).
    """
    from tqdm.auto import tqdm

    cfg = cfg or PretrainConfig()
    blocks = texts if isinstance(texts, torch.Tensor) else pack_texts(tokenizer, texts, cfg.block_size)
    device = next(model.parameters()).device
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate,
        betas=cfg.betas,
        fused=device.type in ("cpu", "cuda"),
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    batch = min(cfg.batch_size, len(blocks))
    order = torch.randperm(len(blocks), generator=gen)
    cursor, losses = 0, []
    model.train()
    bar = tqdm(range(cfg.max_steps), desc="pretrain", disable=not cfg.progress)
    for step in bar:
        if cursor + batch > len(order):
            order, cursor = torch.randperm(len(blocks), generator=gen), 0
        ids = blocks[order[cursor : cursor + batch]].to(device)
        cursor += batch
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, cfg)
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        losses.append(loss.item())
        if step % 10 == 0 or step == cfg.max_steps - 1:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return losses


def world_corpus(world: Any) -> list[str]:
    """Pre-training texts from a world: every topic's news, every user's history (with the reposted text) and
    the replies of the *train* split only - held-out replies must not leak into the zero-shot baseline."""
    texts = [t.news for t in world.topics]
    texts += [p.full_text for u in world.users for p in u.history]
    texts += [r.post.text for r in world.responses if r.split == "train"]
    return [t for t in texts if t]


#: Seed of the background worlds behind :func:`background_corpus` (apart from every course world's seed).
BACKGROUND_SEED = 7919


def _chatml(instruction: str, reply: str) -> str:
    """One chat exchange rendered as the course's ChatML template renders it (system prompt, user, assistant)."""
    from socialalign_lib.build.records.template import SYSTEM_PROMPT

    return (
        f"{IM_START}system\n{SYSTEM_PROMPT}{IM_END}\n{IM_START}user\n{instruction}{IM_END}\n"
        f"{IM_START}assistant\n{reply}{IM_END}\n"
    )


def background_corpus(
    course_world: Any, seed: int = BACKGROUND_SEED, n_reaction_topics: int = 1200, n_records: int = 9000
) -> list[str]:
    """The world knowledge a real LLM brings, for the embedded model: how *other* people react to *other* news.

    A real base model has read millions of people reacting to news; the course model has read only the course world,
    so before this corpus existed it could not tell that bad news draws anger (fine-tuned on 48 topics it answered
    unseen topics below the majority class). Two parts, both from *background* worlds of the same generator with
    their own seeds — other users, other events; any topic whose hashtag or news text equals one of the course
    world's is dropped, so no course topic, user or reply is ever seen in pre-training:

    1. **Public reactions** (world ``seed``, ``n_reaction_topics`` topics): each reply after its news, in the chat
       format the SocialLLM is asked in, without a user block — "what does the public say to this news".
    2. **Personal reactions** (world ``seed + 1``, about ``n_records`` replies): full SocialAlign records (user block
       with five retrieved posts and a statistical persona, news, reply) — in-context reading of a stranger's history,
       the skill a real LLM brings to a persona prompt.

    Fine-tuning then has what the paper's fine-tuning has: the course's own users and the task's own split.
    What each part bought: see docs/design.md#measurements-behind-the-models-defaults (measured).
    """
    # Imported here: the simulator and the record builder are needed to make this corpus, never to load a model.
    from socialalign_lib.build.pipeline import build_from_world
    from socialalign_lib.world.generate import generate_world

    seen = {t.hashtag for t in course_world.topics} | {t.news for t in course_world.topics}
    size = course_world.config.size
    texts = []
    bg = generate_world(size=size, seed=seed, n_topics=n_reaction_topics, n_smp_users=0)
    topics = {t.topic_id: t for t in bg.topics if t.hashtag not in seen and t.news not in seen}
    for r in bg.responses:
        t = topics.get(r.topic_id)
        if t is not None:
            texts.append(
                _chatml(
                    f"现在你看到了一则新闻: \n{t.news}\n关于这个新闻的hashtag #{t.hashtag}# 登上了微博热搜，"
                    f"请发一条关于hashtag #{t.hashtag}# 的微博",
                    r.post.text,
                )
            )
    if n_records:
        rw = generate_world(size=size, seed=seed + 1, n_topics=n_records // 30 + 1, n_smp_users=0)
        dataset = build_from_world(rw, variants=("full",)).dataset  # the course's persona + record steps
        for split in dataset:
            texts += [
                _chatml(r["instruction"], r["output"]) for r in dataset[split] if r["hashtag"] not in seen
            ]
    return texts
