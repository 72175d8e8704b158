"""Decoded replies never show U+FFFD: a byte-level BPE character cut by max_new_tokens is dropped, not drawn."""

from __future__ import annotations

import pytest
import torch

from socialalign_lib.generate.decode import REPLACEMENT_CHAR, decode_complete, generate_replies
from socialalign_lib.generate.sampling import GenerationConfig
from socialalign_lib.models import bytes_to_unicode, load_base_model
from socialalign_lib.paths import EMBEDDED_MODEL


def _byte_token(tokenizer, byte: int) -> int:
    """The id of the single-byte token for ``byte`` in a GPT-2/Qwen byte-level vocabulary (its printable alias)."""
    alias = bytes_to_unicode()[byte]
    tid = tokenizer.convert_tokens_to_ids(alias)
    assert tid is not None and tid != tokenizer.unk_token_id and tokenizer.decode([tid]) != "", (byte, alias)
    return tid


@pytest.fixture(scope="module")
def tokenizer():
    return load_base_model(EMBEDDED_MODEL, device="cpu")[1]


def _emoji_bytes(tokenizer, text: str = "😭") -> list[int]:
    return [_byte_token(tokenizer, b) for b in text.encode("utf-8")]


def test_a_character_cut_mid_bytes_is_dropped_not_shown_as_fffd(tokenizer):
    head = tokenizer.encode("好", add_special_tokens=False)
    emoji = _emoji_bytes(tokenizer)  # 4 byte tokens for one character
    for n in (1, 2, 3):
        cut = head + emoji[:n]
        assert REPLACEMENT_CHAR in tokenizer.decode(cut, skip_special_tokens=True)  # the bug: plain decode
        assert decode_complete(tokenizer, cut) == "好"
    assert decode_complete(tokenizer, head + emoji) == "好😭"  # a complete character is kept
    assert decode_complete(tokenizer, torch.tensor(head + emoji[:2])) == "好"


def test_trailing_pads_and_end_tokens_do_not_hide_the_cut(tokenizer):
    head = tokenizer.encode("好", add_special_tokens=False)
    pads = [tokenizer.pad_token_id or tokenizer.eos_token_id] * 3
    assert decode_complete(tokenizer, head + _emoji_bytes(tokenizer)[:2] + pads) == "好"


def test_an_invalid_byte_inside_the_reply_is_removed(tokenizer):
    """A lead byte followed by ASCII is no character (the model wrote it); the rest of the reply stays."""
    ids = (
        tokenizer.encode("好", add_special_tokens=False)
        + [_byte_token(tokenizer, 0xE4)]
        + tokenizer.encode("ok", add_special_tokens=False)
    )
    assert REPLACEMENT_CHAR in tokenizer.decode(ids)
    assert decode_complete(tokenizer, ids) == "好ok"


class _Scripted(torch.nn.Module):
    """A "model" whose generate appends fixed token ids: generation that stops in the middle of a character."""

    def __init__(self, tail: list[int]):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.tail = tail

    def generate(self, input_ids, **_):
        return torch.cat([input_ids, torch.tensor([self.tail] * len(input_ids))], dim=1)


def test_generate_replies_returns_no_fffd_when_max_new_tokens_cuts_an_emoji(tokenizer):
    from socialalign_lib.build.pipeline import course_data

    records = course_data(size="tiny", seed=0).split("test_user").select(range(2))
    tail = tokenizer.encode("好", add_special_tokens=False) + _emoji_bytes(tokenizer)[:3]
    out = generate_replies(
        _Scripted(tail), tokenizer, records, GenerationConfig.greedy(max_new_tokens=len(tail)), progress=False
    )
    assert list(out["generated"]) == ["好", "好"]
