"""The chat/token form of a record: the chat-templated prompt, token ids, and the PAC-LoRA gates' token spans.

A record carries character spans (:mod:`.template`); a model needs token spans. They come from the tokenizer's
offset mapping, and the offset of the instruction inside the chat-templated prompt is computed by rendering the
template with and without the message, never by searching the text.

Span units (docs/design.md#span-units): the character spans come in as ``record["user_span"]`` /
``record["news_span"]``; a tokenised example hands out **token** spans under the same two keys
(:data:`TOKEN_SPAN_FIELDS`; the keys stay as they are: the trainer's collator and saved datasets read them). Inside
this module the local names say the unit (``*_char_span``, ``*_token_span``).

Two span schemes reach PAC-LoRA (``ChatConfig.spans``): ``"record"`` (ours; gate B reads name + history +
persona, gate A the news text alone) and ``"official"`` (the official code's: gate A reads the whole news block
including the trending-hashtag sentence, gate B every token before it, system prompt and chat-template tokens
included). ``socialllm`` uses the official scheme with the official per-token routing and ours with sequence routing.

:func:`prompt_ids_with_spans` is the prompt alone (what generation feeds the model); :func:`build_chat_example` is
prompt + response + labels (what training feeds it); both tokenise the prompt the same way, in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .template import SYSTEM_PROMPT, RecordError

#: The keys of a tokenised example (:func:`build_chat_example`) that hold ``[start, end)`` *token* spans into its
#: ``input_ids`` (same names as the record's character spans, :data:`.template.CHAR_SPAN_FIELDS`).
TOKEN_SPAN_FIELDS: tuple[str, str] = ("user_span", "news_span")


def spans_from_offsets(
    offsets: Sequence[Sequence[int]], char_spans: Iterable[Sequence[int]]
) -> list[tuple[int, int]]:
    """Half-open token ranges covering each ``[start, end)`` character span.

    A token belongs to a span when its characters overlap it; tokens with empty offsets (special tokens)
    never do. When a span edge falls inside a token (a merge across the edge), that token is included, so
    decoding the range gives the span's text plus at most the rest of the edge tokens.
    """
    out = []
    for s, e in char_spans:
        if e <= s:
            raise ValueError(f"empty character span ({s}, {e})")
        idx = [i for i, (a, b) in enumerate(offsets) if b > a and b > s and a < e]
        if not idx:
            raise ValueError(f"no token overlaps the character span ({s}, {e})")
        out.append((idx[0], idx[-1] + 1))
    return out


def token_spans(
    tokenizer: Any, text: str, char_spans: Iterable[Sequence[int]], add_special_tokens: bool = False
) -> list[tuple[int, int]]:
    """Token ranges ``[start, end)`` of ``char_spans`` in ``tokenizer(text)`` (a fast tokenizer's offsets)."""
    return _encode_with_spans(tokenizer, text, char_spans, add_special_tokens)[1]


def _encode_with_spans(
    tokenizer: Any, text: str, char_spans: Iterable[Sequence[int]], add_special_tokens: bool = False
) -> tuple[list[int], list[tuple[int, int]]]:
    enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    return list(enc["input_ids"]), spans_from_offsets(enc["offset_mapping"], char_spans)


#: Which token spans the PAC-LoRA gates read (``ChatConfig.spans``):
#: ``"record"`` (ours): the record's spans, user = name + history + persona, news = the news text only;
#: ``"official"``: the official code's, news = the whole block "现在你看到了一则新闻: …关于这个新闻的hashtag #…# 登上了
#: 微博热搜" (so gate A sees the hashtag), user = every token before it (chat template tokens and system prompt too).
SPAN_SCHEMES: tuple[str, ...] = ("record", "official")
_NEWS_HEAD = "现在你看到了一则新闻: \n"
_NEWS_BLOCK_END = "，请发一条关于hashtag"


def resolve_spans(spans: str, routing: str | None) -> str:
    """``"auto"`` → ``"official"`` with the official per-token routing, ``"record"`` otherwise; else ``spans``."""
    if spans == "auto":
        return "official" if routing == "token" else "record"
    if spans not in SPAN_SCHEMES:
        raise ValueError(f"spans must be 'auto' or one of {SPAN_SCHEMES}, got {spans!r}")
    return spans


@dataclass
class ChatConfig:
    """How a record becomes a chat training example (official: Qwen2.5 chat template, max length 1024).

    ``spans``: which token spans the PAC-LoRA gates read, see :data:`SPAN_SCHEMES`. ``"record"`` (the default, and
    what sequence routing is trained with): gate B pools the user block the record names (name, history, persona),
    gate A the news text alone. ``"official"``: the official code's spans (the default for
    ``routing="token"``, via ``socialllm.SocialLLMConfig.spans="auto"``).
    ``user_span_includes_system``: with ``spans="record"``, start the user span at the system prompt (the official
    user span starts even earlier, at token 0).
    """

    system_prompt: str = SYSTEM_PROMPT
    max_length: int = 1024
    user_span_includes_system: bool = False
    spans: str = "record"

    def __post_init__(self) -> None:
        if self.spans not in SPAN_SCHEMES:
            raise ValueError(f"ChatConfig.spans must be one of {SPAN_SCHEMES}, got {self.spans!r}")


def official_news_block(instruction: str, news_span: Sequence[int]) -> tuple[int, int]:
    """Character range of the official news block in ``instruction``, found from the record's news span (not by
    searching the whole text, so a history post quoting the header cannot move it): from the header
    "现在你看到了一则新闻" just before the news to the "，请发一条关于hashtag" that follows it (exclusive), as the
    official code's ``prompt.find`` pair delimits it on a well-formed prompt."""
    start = news_span[0] - len(_NEWS_HEAD)
    if start < 0 or instruction[start : news_span[0]] != _NEWS_HEAD:
        raise RecordError(f"no {_NEWS_HEAD.strip()!r} header right before the news span {list(news_span)}")
    end = instruction.find(_NEWS_BLOCK_END, news_span[1])
    if end < 0:
        raise RecordError(f"no {_NEWS_BLOCK_END!r} after the news span {list(news_span)}")
    return start, end


def _messages(system: str, user: str, assistant: str | None = None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    if assistant is not None:
        msgs.append({"role": "assistant", "content": assistant})
    return msgs


def _content_offset(render, filled: list[dict[str, str]], blank: list[dict[str, str]], content: str) -> int:
    """Where ``content`` sits in ``render(filled)``: compare with the same chat rendered with that message
    emptied. The rendered difference must be exactly ``content``, or the template rewrites message text
    (then spans could not be trusted, and we say so instead of guessing)."""
    full, empty = render(filled), render(blank)
    n = len(content)
    if len(full) - len(empty) != n:
        raise ValueError("the chat template does not insert message content verbatim; cannot map spans")
    i = 0
    while i < len(empty) and full[i] == empty[i]:
        i += 1
    for off in range(i, -1, -1):  # the common prefix may run past the insertion point by a few characters
        if full[off : off + n] == content and full[:off] + full[off + n :] == empty:
            return off
    raise ValueError("could not locate the message content in the rendered chat template")


def chat_prompt(tokenizer: Any, instruction: str, config: ChatConfig | None = None) -> tuple[str, int, int]:
    """The generation prompt for ``instruction``, the offset of the instruction in it, and of the system text.

    With a chat template: system + user messages rendered with ``add_generation_prompt=True``. Without one
    (toy tokenizers): "{system}\\n\\n{instruction}\\n\\n", a documented plain fallback.
    """
    cfg = config or ChatConfig()
    if not getattr(tokenizer, "chat_template", None):
        return f"{cfg.system_prompt}\n\n{instruction}\n\n", len(cfg.system_prompt) + 2, 0

    def render(m: list[dict[str, str]]) -> str:
        return tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)

    filled = _messages(cfg.system_prompt, instruction)
    prompt = render(filled)
    off_user = _content_offset(render, filled, _messages(cfg.system_prompt, ""), instruction)
    off_sys = _content_offset(render, filled, _messages("", instruction), cfg.system_prompt)
    return prompt, off_user, off_sys


def _prompt_with_spans(
    tokenizer: Any, record: Mapping[str, Any], cfg: ChatConfig
) -> tuple[str, list[int], tuple[int, int], tuple[int, int]]:
    """The chat-templated prompt of ``record``, its token ids, and the user and news *token* spans in them.

    No length check: :func:`prompt_ids_with_spans` and :func:`build_chat_example` check ``cfg.max_length``, each at
    its own point.
    """
    instruction = record["instruction"]
    prompt, off, off_sys = chat_prompt(tokenizer, instruction, cfg)
    if cfg.spans == "official":
        try:
            block = official_news_block(instruction, record["news_span"])
        except RecordError as exc:
            raise RecordError(f"case {record.get('case_id')}: {exc}") from None
        news_char_span = [block[0] + off, block[1] + off]
        prompt_ids, (news_token_span,) = _encode_with_spans(tokenizer, prompt, [news_char_span])
        # every token before the news block, template and system prompt included
        user_token_span = (0, news_token_span[0])
    else:
        user_char_span = [record["user_span"][0] + off, record["user_span"][1] + off]
        if cfg.user_span_includes_system and getattr(tokenizer, "chat_template", None):
            user_char_span[0] = off_sys
        news_char_span = [record["news_span"][0] + off, record["news_span"][1] + off]
        prompt_ids, (user_token_span, news_token_span) = _encode_with_spans(
            tokenizer, prompt, [user_char_span, news_char_span]
        )
    return prompt, prompt_ids, user_token_span, news_token_span


def _check_prompt_length(record: Mapping[str, Any], prompt_ids: Sequence[int], cfg: ChatConfig) -> None:
    if len(prompt_ids) >= cfg.max_length:
        raise RecordError(
            f"case {record.get('case_id')}: prompt has {len(prompt_ids)} tokens ≥ max_length {cfg.max_length}"
        )


def prompt_ids_with_spans(
    tokenizer: Any, record: Mapping[str, Any], chat: ChatConfig | None = None
) -> tuple[list[int], list[list[int]]]:
    """Prompt token ids (chat template with the generation prompt) and ``[[user], [news]]`` *token* spans.

    What generation feeds the model: the same ids and spans as the prompt part of :func:`build_chat_example` (the
    prompt is tokenised on its own there too), without rendering a response. A prompt that does not fit
    ``chat.max_length`` raises :class:`RecordError`, as in training.
    """
    cfg = chat or ChatConfig()
    _, prompt_ids, user_token_span, news_token_span = _prompt_with_spans(tokenizer, record, cfg)
    _check_prompt_length(record, prompt_ids, cfg)
    return prompt_ids, [list(user_token_span), list(news_token_span)]


def build_chat_example(
    tokenizer: Any, record: Mapping[str, Any], config: ChatConfig | None = None
) -> dict[str, Any]:
    """``input_ids``, ``attention_mask``, ``labels`` (-100 on the prompt) and token ``user_span`` / ``news_span``.

    ``config.spans`` picks the spans (:data:`SPAN_SCHEMES`): the record's, or the official code's. The prompt and the
    response are tokenised separately (as at generation time, where the prompt is all the model has), so the label
    boundary is a token boundary. Spans are the record's character spans shifted by the instruction's offset in the
    rendered chat and mapped through the offset mapping. A response that does not fit ``max_length`` is cut; a
    prompt that does not fit raises (cutting it would lose the news).

    The returned ``user_span`` / ``news_span`` are *token* spans into ``input_ids`` (:data:`TOKEN_SPAN_FIELDS`),
    unlike the record's character spans of the same names.
    """
    cfg = config or ChatConfig()
    instruction, output = record["instruction"], record["output"]
    prompt, prompt_ids, user_token_span, news_token_span = _prompt_with_spans(tokenizer, record, cfg)
    if getattr(tokenizer, "chat_template", None):
        full = tokenizer.apply_chat_template(
            _messages(cfg.system_prompt, instruction, output), tokenize=False
        )
        if not full.startswith(prompt):
            raise ValueError("the chat template renders the prompt differently once the answer is added")
        response = full[len(prompt) :]
    else:
        response = output + (tokenizer.eos_token or "")
    response_ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    _check_prompt_length(record, prompt_ids, cfg)
    response_ids = response_ids[: cfg.max_length - len(prompt_ids)]
    return {
        "input_ids": prompt_ids + response_ids,
        "attention_mask": [1] * (len(prompt_ids) + len(response_ids)),
        "labels": [-100] * len(prompt_ids) + response_ids,
        "user_span": list(user_token_span),
        "news_span": list(news_token_span),
        "prompt_length": len(prompt_ids),
    }
