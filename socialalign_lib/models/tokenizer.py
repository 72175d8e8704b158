"""The course model's tokenizer: a byte-level BPE with Qwen2's pipeline, ChatML special tokens and chat template.

Why it exists: nothing can be downloaded from a model hub in the embedded setting, yet every later notebook needs a
fast tokenizer with offset mappings and a chat template that behaves like Qwen2's. :func:`train_tokenizer` trains one
on the world's text in seconds (``tokenizers``' trainer for the word merges).
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

EOS_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (EOS_TOKEN, IM_START, IM_END)

# Qwen2's pre-tokenizer split (tokenizer.json of Qwen2/Qwen2.5): letter runs (a whole run of CJK characters is one
# piece, so BPE can learn words), single digits, punctuation/emoji runs, newlines, spaces.
QWEN2_SPLIT_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"  # noqa: E501

# ChatML as Qwen2 renders it, without Qwen's default system message. The {% generation %} markers are no-ops for
# rendering; they let ``apply_chat_template(return_assistant_tokens_mask=True)`` (TRL's assistant_only_loss) find
# the answer tokens. transformers renders with trim_blocks, so a newline right after a block tag is written {{ }}.
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}<|im_end|>{% endgeneration %}"
    "{% else %}{{ m['content'] }}<|im_end|>{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable characters (the byte-level BPE alphabet)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _char_merges(
    counts: Counter[str], budget: int, min_frequency: int, b2u: dict[int, str]
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


def _word_merges(
    texts: Sequence[str], covered: set[str], budget: int, min_frequency: int, b2u: dict[int, str]
) -> list[tuple[str, str]]:
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
    trainer = trainers.BpeTrainer(
        vocab_size=len(alphabet) + budget,
        min_frequency=min_frequency,
        show_progress=False,
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
    )
    tk.train_from_iterator(pieces(), trainer=trainer)
    merges = json.loads(tk.to_str())["model"]["merges"]

    def to_bytes(s: str) -> str:
        return "".join(b2u[x] for x in s.encode("utf-8"))

    return [(to_bytes(a), to_bytes(b)) for a, b in merges[:budget]]


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 4000,
    *,
    padding_side: str = "right",
    model_max_length: int = 1024,
    min_frequency: int = 2,
    char_fraction: float = 0.5,
) -> Any:
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
        raise ValueError(
            f"vocab_size {vocab_size} is below the 256 bytes + {len(SPECIAL_TOKENS)} special tokens"
        )
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

    tk = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, unk_token=None, fuse_unk=False, byte_fallback=False)
    )
    tk.normalizer = normalizers.NFC()
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tk.decoder = decoders.ByteLevel()
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        bos_token=None,
        unk_token=None,
        additional_special_tokens=[IM_START, IM_END],
        padding_side=padding_side,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
        chat_template=CHATML_TEMPLATE,
    )
