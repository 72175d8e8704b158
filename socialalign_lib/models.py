"""The course's own base model: a byte-level BPE tokenizer and a tiny Qwen2 pre-trained on the world's text.

Why it exists: nothing can be downloaded from a model hub in the embedded setting, yet every later notebook needs a
real causal LM with a chat template, an offset-mapping tokenizer and the Qwen2 module names that PAC-LoRA targets.
So the course trains one in a minute or two on CPU:

1. :func:`train_tokenizer` - byte-level BPE with Qwen2's pre-tokenizer regex (CJK runs stay together, so common
   characters and words become single tokens), ChatML special tokens and chat template.
2. :func:`build_tiny_model` - a randomly initialised ``Qwen2ForCausalLM`` (or ``LlamaForCausalLM``) sized by
   :class:`TinyModelConfig`.
3. :func:`pretrain` - a plain-torch causal-LM loop on packed text, so the "zero-shot base model" baseline is a
   language model of Weibo text rather than noise.
4. :func:`build_base_model` - all three, saved atomically with ``save_pretrained`` plus a model card.

:func:`load_base_model` is the one loader notebooks use, for the embedded folder and for any hub id alike
(optionally NF4 4-bit through bitsandbytes, also on CPU).

Rebuild the embedded model with ``make model`` (``python -m socialalign_lib.models --rebuild``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

EOS_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (EOS_TOKEN, IM_START, IM_END)

# Qwen2's pre-tokenizer split (tokenizer.json of Qwen2/Qwen2.5): letter runs (a whole run of CJK characters is one
# piece, so BPE can learn words), single digits, punctuation/emoji runs, newlines, spaces.
QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# ChatML as Qwen2 renders it, without Qwen's default system message. The {% generation %} markers are no-ops for
# rendering; they let ``apply_chat_template(return_assistant_tokens_mask=True)`` (TRL's assistant_only_loss) find
# the answer tokens. transformers renders with trim_blocks, so a newline right after a block tag is written {{ }}.
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}<|im_end|>{% endgeneration %}"
    "{% else %}{{ m['content'] }}<|im_end|>{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class ModelNotFoundError(FileNotFoundError):
    """``load_base_model`` could not find a local folder and could not (or may not) reach the hub."""


# --------------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------------


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable characters (the byte-level BPE alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _char_merges(counts: Counter[str], budget: int, min_frequency: int, b2u: dict[int, str]
                 ) -> tuple[list[tuple[str, str]], set[str]]:
    """Byte-level merges that assemble whole multi-byte characters, most frequent characters first.

    Returns ``(merges, covered)``: at most ``budget`` merges, and the characters they complete. A UTF-8 lead byte
    never follows another character's last byte, so these merges can only fire inside a character. Ordered by
    prefix length, then by frequency, so every merge's parts exist before it is applied.
    """
    needed: dict[tuple[str, str], int] = {}
    covered: set[str] = set()
    for ch, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if n < min_frequency:
            break
        b = ch.encode("utf-8")
        if len(b) == 1:
            continue
        pieces = [b2u[x] for x in b]
        steps = [("".join(pieces[:i]), pieces[i]) for i in range(1, len(pieces))]
        new = [m for m in steps if m not in needed]
        if len(needed) + len(new) > budget:
            break
        for m in steps:
            needed[m] = needed.get(m, 0) + n
        covered.add(ch)
    order = sorted(needed, key=lambda m: (len(m[0]), -needed[m], m))
    return order, covered


def _word_merges(texts: Sequence[str], covered: set[str], budget: int, min_frequency: int,
                 b2u: dict[int, str]) -> list[tuple[str, str]]:
    """Merges of whole characters into words, learnt by a character-level BPE over Qwen2's pre-tokens and
    translated to byte-level strings. Text is cut at characters that are not covered (rare ones stay bytes), so
    no merge learns to join characters that are not adjacent in real text."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    if budget <= 0:
        return []

    def pieces() -> Iterable[str]:
        for text in texts:
            piece: list[str] = []
            for ch in text:
                if ch in covered or ord(ch) < 128:
                    piece.append(ch)
                elif piece:
                    yield "".join(piece)
                    piece = []
            if piece:
                yield "".join(piece)

    alphabet = sorted(covered | {chr(i) for i in range(128)})
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False)
    trainer = trainers.BpeTrainer(vocab_size=len(alphabet) + budget, min_frequency=min_frequency,
                                  show_progress=False, initial_alphabet=alphabet, limit_alphabet=len(alphabet))
    tk.train_from_iterator(pieces(), trainer=trainer)
    merges = json.loads(tk.to_str())["model"]["merges"]

    def to_bytes(s: str) -> str:
        return "".join(b2u[x] for x in s.encode("utf-8"))

    return [(to_bytes(a), to_bytes(b)) for a, b in merges[:budget]]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4000, *, padding_side: str = "right",
                    model_max_length: int = 1024, min_frequency: int = 2, char_fraction: float = 0.5) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``texts`` (Chinese Weibo posts and news).

    Byte-level, so nothing is unknown (emoji and rare characters fall back to bytes) and round trips are exact
    (``decode(encode(x)) == x`` for NFC text, i.e. any ordinary Chinese text). Qwen2's pipeline (NFC, its split
    regex, byte-level), because transformers 5 *rebuilds* a ``Qwen2Tokenizer`` with that pipeline whenever
    ``AutoTokenizer`` loads a ``model_type="qwen2"`` folder: the in-memory and the reloaded tokenizer then agree
    token for token. The regex keeps runs of CJK characters together so BPE can learn words.

    Why two passes: a plain byte-level BPE on Chinese spends over a quarter of its merges on byte pairs that
    straddle two characters and leaves frequent characters (转 微 博) split into bytes when they mostly occur
    inside a longer word. So (1) merges that complete the most frequent multi-byte characters come first (at most
    ``char_fraction`` of the merge budget), then (2) a character-level BPE (``tokenizers``' trainer) learns words
    over those characters. The result is an ordinary byte-level BPE ``tokenizer.json`` whose tokens are whole
    characters or words (plus the byte prefixes that build them), so offsets map cleanly.

    ``return_offsets_mapping=True`` gives character offsets into the input (a rare character split into byte
    tokens gives each of them the character's full span). Special tokens: ``<|endoftext|>`` (eos and pad, id 0),
    ``<|im_start|>`` and ``<|im_end|>`` (ids 1, 2); no BOS is added. ``padding_side`` goes to the constructor
    because setting the attribute later is not saved by ``save_pretrained``. ``chat_template``: Qwen2-style
    ChatML (:data:`CHATML_TEMPLATE`). Deterministic: the same texts give the same vocabulary and merges.
    """
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from transformers import PreTrainedTokenizerFast

    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if not 0.0 <= char_fraction <= 1.0:
        raise ValueError(f"char_fraction must be in [0, 1], got {char_fraction}")
    n_merges = vocab_size - 256 - len(SPECIAL_TOKENS)
    if n_merges < 0:
        raise ValueError(f"vocab_size {vocab_size} is below the 256 bytes + {len(SPECIAL_TOKENS)} special tokens")
    texts = [unicodedata.normalize("NFC", t) for t in texts if t]
    b2u = bytes_to_unicode()
    counts = Counter(ch for t in texts for ch in t)
    char_merges, covered = _char_merges(counts, int(n_merges * char_fraction), min_frequency, b2u)
    word_merges = _word_merges(texts, covered, n_merges - len(char_merges), min_frequency, b2u)

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in sorted(b2u.values(), key=lambda c: ord(c)):
        vocab[ch] = len(vocab)
    merges = []
    for a, b in char_merges + word_merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
            merges.append((a, b))

    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=None, fuse_unk=False, byte_fallback=False))
    tk.normalizer = normalizers.NFC()
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tk.decoder = decoders.ByteLevel()
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN, bos_token=None, unk_token=None,
        additional_special_tokens=[IM_START, IM_END], padding_side=padding_side,
        model_max_length=model_max_length, clean_up_tokenization_spaces=False, chat_template=CHATML_TEMPLATE,
    )


# --------------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------------


@dataclass
class TinyModelConfig:
    """Shape of the course model (~0.9 M parameters at vocab 4000). ``vocab_size`` comes from the tokenizer.

    Grouped-query attention (4 query heads, 2 key/value heads, head dim 32) and tied embeddings as in Qwen2.5-0.5B,
    so the code paths the course exercises are those of the real family. ``arch`` "qwen2" (q/k/v biases) or
    "llama" (none) - the latter exists to check that nothing in the library is Qwen2-specific.
    """

    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 352
    max_position_embeddings: int = 1024
    tie_word_embeddings: bool = True
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    initializer_range: float = 0.02
    arch: str = "qwen2"


def _special_ids(tokenizer: Any) -> tuple[int, int, list[int]]:
    """(pad id, bos id, generation eos ids): chat answers end with ``<|im_end|>``, plain text with the eos."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos token")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    stops = [eos]
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id and im_end not in stops:
        stops.insert(0, im_end)
    return pad, eos, stops


def build_tiny_model(tokenizer: Any, cfg: TinyModelConfig | None = None, *, arch: str | None = None,
                     seed: int = 0) -> Any:
    """A randomly initialised ``Qwen2ForCausalLM`` (``arch="llama"``: ``LlamaForCausalLM``) for ``tokenizer``.

    ``vocab_size = len(tokenizer)`` (added tokens included). Initialisation is seeded inside ``fork_rng``, so it is
    reproducible and leaves the caller's global RNG untouched. ``generation_config``: pad = ``<|endoftext|>``,
    eos = [``<|im_end|>``, ``<|endoftext|>``] so generation stops at the end of a chat turn or of a text.
    Returns the model in eval mode, fp32, on CPU.
    """
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    cfg = cfg or TinyModelConfig()
    arch = (arch or cfg.arch).lower()
    classes = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}
    if arch not in classes:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(classes)}")
    pad, eos, stops = _special_ids(tokenizer)
    config_cls, model_cls = classes[arch]
    config = config_cls(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=cfg.tie_word_embeddings, rms_norm_eps=cfg.rms_norm_eps,
        initializer_range=cfg.initializer_range,
        rope_parameters={"rope_type": "default", "rope_theta": float(cfg.rope_theta)},
        pad_token_id=pad, bos_token_id=eos, eos_token_id=eos, dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model.generation_config.pad_token_id = pad
    model.generation_config.bos_token_id = eos
    model.generation_config.eos_token_id = stops
    return model.eval()


# --------------------------------------------------------------------------------------------------------
# Pre-training
# --------------------------------------------------------------------------------------------------------


@dataclass
class PretrainConfig:
    """Knobs of :func:`pretrain`. Defaults: 3,000 steps of 4×512 tokens (~6 M tokens, ~1.5 passes over the course
    world's text plus :func:`background_corpus`), ~20 minutes on one CPU thread. (1,500 steps: zero-shot sentiment
    accuracy 0.46 / 0.51 on unseen users / topics; 3,000: 0.52 / 0.54; a 2-M-parameter model at 1,500 steps: 0.47 / 0.48.) Blocks of 512 tokens hold a whole
    SocialAlign record (~480 tokens), so the model sees a reply together with the news and the user it answers.

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


def pretrain(model: Any, tokenizer: Any, texts: Sequence[str] | torch.Tensor, cfg: PretrainConfig | None = None
             ) -> list[float]:
    """Causal-LM pre-training on packed ``texts``, in place; returns the loss of every step.

    Plain torch so the loop fits on one screen: blocks ``[batch, block_size]`` drawn without replacement from a
    seeded permutation (reshuffled each epoch), ``labels = input_ids`` (the model shifts them), AdamW without
    decay on biases and norms, warm-up + cosine schedule, gradient clipping. Runs on the model's device;
    ``texts`` may also be pre-packed blocks from :func:`pack_texts`. Leaves the model in eval mode.
    On CPU, one torch thread is often fastest at this size: on 2 shared cores, 2 threads ran 12× slower
    (OpenMP oversubscription) than 1 (~0.17 s per 16×128 step for the default model).
    """
    from tqdm.auto import tqdm

    cfg = cfg or PretrainConfig()
    blocks = texts if isinstance(texts, torch.Tensor) else pack_texts(tokenizer, texts, cfg.block_size)
    device = next(model.parameters()).device
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=cfg.learning_rate, betas=cfg.betas, fused=device.type in ("cpu", "cuda"))
    gen = torch.Generator().manual_seed(cfg.seed)
    batch = min(cfg.batch_size, len(blocks))
    order = torch.randperm(len(blocks), generator=gen)
    cursor, losses = 0, []
    model.train()
    bar = tqdm(range(cfg.max_steps), desc="pretrain", disable=not cfg.progress)
    for step in bar:
        if cursor + batch > len(order):
            order, cursor = torch.randperm(len(blocks), generator=gen), 0
        ids = blocks[order[cursor: cursor + batch]].to(device)
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


# --------------------------------------------------------------------------------------------------------
# Build and save
# --------------------------------------------------------------------------------------------------------


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


def build_base_model(texts: Sequence[str], out_dir: str | os.PathLike, vocab_size: int = 4000,
                     model_cfg: TinyModelConfig | None = None, pretrain_cfg: PretrainConfig | None = None, *,
                     overwrite: bool = False, name: str = "socialalign-tiny", device: str = "cpu") -> Path:
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
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__},
    }

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.to("cpu").save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "build_info.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(_model_card(info), encoding="utf-8")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out


# --------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------


def resolve_device(device: str = "auto") -> str:
    """"auto" → "cuda" when a GPU is visible, else "cpu"; anything else is returned unchanged.

    Under ``torchrun`` / ``accelerate launch`` (``LOCAL_RANK`` set) "auto" is this process's own GPU,
    ``"cuda:<LOCAL_RANK>"``: with a plain "cuda" every DDP rank would load its replica onto GPU 0."""
    if device == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        local_rank = os.environ.get("LOCAL_RANK")
        return f"cuda:{int(local_rank)}" if local_rank is not None else "cuda"
    return device


def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def load_base_model(name_or_path: str | os.PathLike, *, load_in_4bit: bool = False, device: str = "auto",
                    dtype: torch.dtype | str | None = None, trust_remote_code: bool = False,
                    padding_side: str | None = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for the embedded folder or any hub id / local path, in eval mode.

    The one loader of the course, so that switching from the embedded model to ``Qwen/Qwen2.5-7B-Instruct`` is a
    change of one parameter. ``device`` "auto" = CUDA when available, else CPU. ``dtype`` None = float32 on CPU
    (bf16 matmuls are several times slower there) and the checkpoint's own dtype on CUDA.

    ``load_in_4bit``: bitsandbytes NF4 with double quantisation (QLoRA's recipe); compute dtype bfloat16 on CUDA,
    float32 on CPU (bitsandbytes >= 0.50 runs NF4 on CPU), or ``dtype`` when given. The LM head and embeddings
    stay unquantised.

    The tokenizer always has a pad token (eos when the checkpoint defines none), and the model's
    ``generation_config.pad_token_id`` matches it. ``padding_side`` is passed to the tokenizer constructor.
    Raises :class:`ModelNotFoundError` when ``name_or_path`` is neither a local folder nor reachable.
    """
    from huggingface_hub.errors import HFValidationError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(device)
    local = Path(name_or_path).expanduser()
    source = str(local) if local.exists() else str(name_or_path)
    if local.exists() and not (local / "config.json").exists():
        raise ModelNotFoundError(f"{local} exists but holds no config.json: not a saved model folder")

    if dtype is None:
        dtype = torch.float32 if device == "cpu" else "auto"
    kwargs: dict[str, Any] = {"dtype": dtype, "device_map": {"": device}, "trust_remote_code": trust_remote_code}
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        compute = dtype if isinstance(dtype, torch.dtype) else (
            torch.bfloat16 if device.startswith("cuda") else torch.float32)
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute,
            bnb_4bit_use_double_quant=True)
        if dtype == "auto":
            kwargs["dtype"] = compute
    tok_kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if padding_side is not None:
        tok_kwargs["padding_side"] = padding_side
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **tok_kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, HFValidationError) as err:
        if local.exists():
            raise
        from socialalign_lib.paths import EMBEDDED_MODEL

        hint = ("the hub is offline (HF_HUB_OFFLINE=1): unset it and check the network, or pre-download the model"
                if _hub_offline() else "check the name and the network")
        raise ModelNotFoundError(
            f"cannot load model {str(name_or_path)!r}: it is not a local folder and {hint}. The embedded default is "
            f"{EMBEDDED_MODEL} (rebuild it with `make model`).") from err

    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer of {source} has neither a pad nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


# --------------------------------------------------------------------------------------------------------
# Command line: `python -m socialalign_lib.models --rebuild`
# --------------------------------------------------------------------------------------------------------


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
    from .records import SYSTEM_PROMPT

    return (f"{IM_START}system\n{SYSTEM_PROMPT}{IM_END}\n{IM_START}user\n{instruction}{IM_END}\n"
            f"{IM_START}assistant\n{reply}{IM_END}\n")


def background_corpus(course_world: Any, seed: int = BACKGROUND_SEED, n_reaction_topics: int = 1200,
                      n_records: int = 9000) -> list[str]:
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
    Measured when this was introduced (LoRA, 300 steps, 200 test records per split, one sampled reply): sentiment
    accuracy on unseen topics 0.33 with the course-world-only model, 0.43 with part 1, see ``make model``'s card for
    the chosen build.
    """
    from .persona import PersonaExtractor, StatisticalPersonaBackend, persona_posts, personas_of
    from .records import build_dataset
    from .retrieval import RetrievalConfig
    from .world.generate import generate_world

    seen = {t.hashtag for t in course_world.topics} | {t.news for t in course_world.topics}
    size = course_world.config.size
    texts = []
    bg = generate_world(size=size, seed=seed, n_topics=n_reaction_topics, n_smp_users=0)
    topics = {t.topic_id: t for t in bg.topics if t.hashtag not in seen and t.news not in seen}
    for r in bg.responses:
        t = topics.get(r.topic_id)
        if t is not None:
            texts.append(_chatml(f"现在你看到了一则新闻: \n{t.news}\n关于这个新闻的hashtag #{t.hashtag}# 登上了微博热搜，"
                                 f"请发一条关于hashtag #{t.hashtag}# 的微博", r.post.text))
    if n_records:
        rw = generate_world(size=size, seed=seed + 1, n_topics=n_records // 30 + 1, n_smp_users=0)
        extractor = PersonaExtractor(StatisticalPersonaBackend())
        personas = extractor.extract_users(rw.users, lambda u: persona_posts(u, k=10), progress=False)
        dataset = build_dataset(rw, RetrievalConfig(k=5), personas_of(personas), variants=("full",))
        for split in dataset:
            texts += [_chatml(r["instruction"], r["output"]) for r in dataset[split] if r["hashtag"] not in seen]
    return texts


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
    ap.add_argument("--no-background", action="store_true",
                    help="pre-train on the course world's text only (no background reactions: the old model)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads, fixed for reproducible weights; 1 is fastest for this model on shared cores")
    args = ap.parse_args(argv)
    if args.out.exists() and not args.rebuild:
        print(f"{args.out} exists (use --rebuild to replace it)")
        return None
    from socialalign_lib.world.generate import generate_world

    torch.set_num_threads(args.threads)
    world = generate_world(size=args.size, seed=args.world_seed)
    texts = world_corpus(world) + ([] if args.no_background else background_corpus(world))
    out = build_base_model(texts, args.out, args.vocab_size,
                           pretrain_cfg=PretrainConfig(max_steps=args.steps, seed=args.seed), overwrite=True)
    info = json.loads((out / "build_info.json").read_text(encoding="utf-8"))
    print(f"{out}: {info['n_parameters']:,} parameters, vocab {info['vocab_size']}, {info['steps']} steps, "
          f"loss {info['first_loss']:.2f} → {info['final_loss']:.2f}, {info['seconds_per_step']:.3f} s/step")
    return out


if __name__ == "__main__":
    main()
