"""SocialAlign instruction records (Alpaca form) with character spans, and their chat/token form.

The official pipeline (docs/formats.md#socialalign-alpaca-json) fills a Chinese template — user name, five retrieved history posts,
the persona, the news, the trending hashtag, guidance — and PAC-LoRA later finds the news and user parts
again by *searching* the text for "现在你看到了一则新闻" and "，请发一条关于hashtag". A persona or a post that
contains those words breaks that silently. Here the template is assembled piece by piece and the
character spans of the user block (name + history + persona) and of the news text are recorded *while the
string is built*; tokens spans come from the tokenizer's offset mapping, and the offset of the instruction
inside the chat-templated prompt is computed by rendering the template, never by searching the text.

Two span schemes reach PAC-LoRA (``ChatConfig.spans``): ``"record"`` (ours; gate B reads name + history +
persona, gate A the news text alone) and ``"official"`` (the official code's: gate A reads the whole news block
including the trending-hashtag sentence, gate B every token before it, system prompt and chat-template tokens
included). ``socialllm`` uses the official scheme with the official per-token routing and ours with sequence routing.

Record fields: ``instruction``, ``input`` (""), ``output`` (the real post), ``user_span``, ``news_span``
(``[start, end)`` character offsets into ``instruction``), ``sentiment``, ``case_id``, ``topic_id``,
``user_id``, ``category``, ``split``, ``variant``, plus ``hashtag``, ``user_name``, ``history_ids``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .schema import Case, Persona, Post, User

if TYPE_CHECKING:
    from datasets import DatasetDict

    from .world import World

log = logging.getLogger(__name__)

SYSTEM_PROMPT = "你是一个微博用户。"
VARIANTS: tuple[str, ...] = ("full", "without_persona", "without_history")
SPLITS: tuple[str, ...] = ("train", "validation", "test_user", "test_topic", "test_both")

_GUIDE_FIRST = {
    "full": "    - 可以参考你的个人信息、历史博文、用户画像和这则新闻，用自己的风格和立场发表观点",
    "without_persona": "    - 可以参考你的个人信息、历史博文和这则新闻，用自己的风格和立场发表观点",
    "without_history": "    - 可以参考你的个人信息、用户画像和这则新闻，用自己的风格和立场发表观点",
}
_GUIDE_REST = ("    - 这条微博的长度应与你的历史博文相似\n"
               "    - 不要强行参考历史信息\n"
               "    - 仅输出你发表的微博内容")
_ZH_NUM = "零一二三四五六七八九十"


class RecordError(ValueError):
    """A record cannot be built: names the case and what is missing."""


def render_history_item(post: Post) -> str:
    """The official record's rendering (second person, unlike the persona prompt's "该用户转发了微博")."""
    if post.retweet is not None:
        return f"你转发了微博: {post.retweet.text}, 并评论说: {post.text}".strip()
    return post.text.strip()


def render_persona(persona: Persona | str) -> str:
    """A :class:`Persona` via its numbered ``render()``; free text with blank lines collapsed (as upstream)."""
    text = persona.render() if isinstance(persona, Persona) else str(persona)
    return re.sub(r"\n{2,}", "\n", text).strip()


class _SpanWriter:
    """Appends pieces and remembers where named spans start and end: offsets by construction."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.spans: dict[str, list[int]] = {}

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.pos += len(text)

    def open(self, name: str) -> None:
        self.spans[name] = [self.pos, self.pos]

    def close(self, name: str) -> None:
        self.spans[name][1] = self.pos

    def text(self) -> str:
        return "".join(self.parts)


def render_instruction(user_name: str, history_posts: Sequence[Post], persona: Persona | str | None, news: str,
                       hashtag: str, variant: str = "full") -> tuple[str, tuple[int, int], tuple[int, int]]:
    """The official instruction text and the (start, end) character spans of the user block and the news.

    Wording and order are the official template's, including the spaces after "历史博文:" and "新闻:"; the
    only liberty: with fewer than five history posts the count word says how many there are.
    """
    persona_text = None if persona is None else render_persona(persona)
    return render_instruction_parts(user_name, [render_history_item(p) for p in history_posts], persona_text,
                                    news.replace("\\n", "\n"), hashtag, variant)


def render_instruction_parts(user_name: str, history_items: Sequence[str], persona_text: str | None, news: str,
                             hashtag: str, variant: str = "full") -> tuple[str, tuple[int, int], tuple[int, int]]:
    """:func:`render_instruction` from parts already rendered: history items and persona text go in verbatim.

    This is the official template's ``format`` call; an official record's parts (``schema.RecordParts``) give its
    instruction back character for character.
    """
    if variant not in VARIANTS:
        raise RecordError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
    w = _SpanWriter()
    w.open("user")
    w.add(f"你的用户名为{user_name}, ")
    if variant != "without_history":
        n = len(history_items)
        count = _ZH_NUM[n] if n <= 10 else str(n)
        w.add(f"以下是你的{count}条历史博文: \n")
        w.add("\n".join(f"{i}. {item}" for i, item in enumerate(history_items, 1)))
    if variant != "without_persona":
        if persona_text is None:
            raise RecordError(f"variant {variant!r} needs a persona")
        w.add("\n" if variant == "full" else "")
        w.add("以下是你的用户画像：\n" + persona_text)
    w.close("user")
    w.add("\n现在你看到了一则新闻: \n")
    w.open("news")
    w.add(news)
    w.close("news")
    w.add(f"\n关于这个新闻的hashtag #{hashtag}# 登上了微博热搜，请发一条关于hashtag #{hashtag}# 的微博，请注意：\n")
    w.add(_GUIDE_FIRST[variant] + "\n" + _GUIDE_REST)
    user, news_span = w.spans["user"], w.spans["news"]
    return w.text(), (user[0], user[1]), (news_span[0], news_span[1])


def render_record(case: Case, history_posts: Sequence[Post], persona: Persona | str | None,
                  variant: str = "full") -> dict[str, Any]:
    """One Alpaca record for ``case`` from its retrieved ``history_posts`` and the user's persona."""
    try:
        instruction, user_span, news_span = render_instruction(
            case.user.screen_name, history_posts, persona, case.topic.news, case.topic.hashtag, variant)
    except RecordError as exc:
        raise RecordError(f"case {case.case_id} (user {case.user.user_id}): {exc}") from None
    return _record(case, instruction, user_span, news_span, variant, [p.post_id for p in history_posts])


def render_parts_record(case: Case, variant: str | None = None,
                        persona: Persona | str | None = None) -> dict[str, Any]:
    """The record of a case read from an official record (``case.record_parts``), rendered from its own parts.

    ``variant`` None (or the record's own variant) with no ``persona``: the record's instruction, character for
    character, and its spans. Another variant: the official template of that variant filled with the same parts
    (what the official dataset script writes for the same case), e.g. ``without_persona`` from a ``full`` record.
    ``persona`` replaces the record's persona (a :class:`Persona` is rendered, a string goes in as it is).

    Raises:
        RecordError: the case has no parts, or the variant needs a part the record does not have (the history of
            a ``without_history`` record, the persona of a ``without_persona`` one).
    """
    parts = case.record_parts
    if parts is None:
        raise RecordError(f"case {case.case_id}: no record_parts (not read from an official record)")
    variant = variant or parts.variant
    if variant != "without_history" and parts.variant == "without_history":
        raise RecordError(f"case {case.case_id}: variant {variant!r} needs the history, which its "
                          f"{parts.variant!r} record does not have")
    persona_text = parts.persona_text if persona is None else render_persona(persona)
    try:
        instruction, user_span, news_span = render_instruction_parts(
            parts.user_name, parts.history, persona_text, parts.news, parts.hashtag, variant)
    except RecordError as exc:
        raise RecordError(f"case {case.case_id} (user {case.user.user_id}): {exc}") from None
    if variant == parts.variant and persona is None and instruction != parts.instruction:
        # the template is not the official one (another tool wrote the file): keep the record as it is
        from .loaders import parse_socialalign_instruction

        found = parse_socialalign_instruction(parts.instruction)
        if found["user_span"] is None or found["news_span"] is None:
            raise RecordError(f"case {case.case_id}: cannot find the user and news spans in its instruction")
        instruction, user_span, news_span = parts.instruction, found["user_span"], found["news_span"]
    history_ids = [] if variant == "without_history" else [p.post_id for p in case.user.history]
    return _record(case, instruction, user_span, news_span, variant, history_ids)


def _record(case: Case, instruction: str, user_span: Sequence[int], news_span: Sequence[int], variant: str,
            history_ids: list[str]) -> dict[str, Any]:
    return {
        "instruction": instruction,
        "input": "",
        "output": case.response.text,
        "user_span": list(user_span),
        "news_span": list(news_span),
        "sentiment": case.sentiment,
        "case_id": case.case_id,
        "topic_id": case.topic.topic_id,
        "user_id": case.user.user_id,
        "category": case.topic.category,
        "split": case.split,
        "variant": variant,
        "hashtag": case.topic.hashtag,
        "user_name": case.user.screen_name,
        "history_ids": history_ids,
    }


#: Record variants made at inference from a ``full`` record (the official ablation protocol), by
#: :func:`official_inference_ablation`.
INFERENCE_ABLATIONS: dict[str, str] = {"history": "infer_without_history", "persona": "infer_without_persona"}
_HISTORY_BLOCK = re.compile(r"以下是你的[^条\n]{1,4}条历史博文: [\s\S]*?(以下是你的用户画像)")
_HISTORY_GUIDE = re.compile(r"- 这条微博的长度应与你的历史博文相似[\s\S]*?- 不要强行参考历史信息")
_PERSONA_BLOCK = re.compile(r"以下是你的用户画像：[\s\S]*?(现在你看到了一则新闻)")


def official_inference_ablation(record: Mapping[str, Any], remove: str) -> dict[str, Any]:
    """A ``full`` record with its history (``remove="history"``) or persona (``"persona"``) removed from the
    prompt, as the official inference-time ablation does it: the official "w/o history" row is the *full* model
    asked without the history (ours, ``variant="without_history"``, is a model trained and asked on that template).

    The official text edits, verbatim: the history block up to the persona is cut, the guidance line about the
    length of "your history posts" is dropped, and every "、历史博文" / "，历史博文" goes (for the persona: the
    block up to the news, and "、用户画像"); the count word of the history may be any, not only "五". The spans are
    then found again in the new text. The new record's ``variant`` is ``INFERENCE_ABLATIONS[remove]``.

    Raises:
        RecordError: not a ``full`` record, an unknown ``remove``, or a text the edits leave without spans.
    """
    from .loaders import parse_socialalign_instruction

    if remove not in INFERENCE_ABLATIONS:
        raise RecordError(f"remove must be one of {sorted(INFERENCE_ABLATIONS)}, got {remove!r}")
    if record.get("variant", "full") != "full":
        raise RecordError(f"case {record.get('case_id')}: the inference ablation starts from a 'full' record, "
                          f"got variant {record.get('variant')!r}")
    text = record["instruction"]
    if remove == "history":
        text = _HISTORY_BLOCK.sub(r"\1", text)
        text = _HISTORY_GUIDE.sub("- 不要强行参考历史信息", text)
        text = re.sub(r"[、，]历史博文", "", text)
    else:
        text = _PERSONA_BLOCK.sub(r"\1", text)
        text = re.sub(r"[、，]用户画像", "", text)
    parts = parse_socialalign_instruction(text)
    if parts["user_span"] is None or parts["news_span"] is None:
        raise RecordError(f"case {record.get('case_id')}: no user/news spans left after removing the {remove}")
    out = dict(record)
    out.update(instruction=text, user_span=list(parts["user_span"]), news_span=list(parts["news_span"]),
               variant=INFERENCE_ABLATIONS[remove])
    if remove == "history":
        out["history_ids"] = []
    return out


# --------------------------------------------------------------------------------------------------------
# Token spans and the chat form
# --------------------------------------------------------------------------------------------------------


def spans_from_offsets(offsets: Sequence[Sequence[int]], char_spans: Iterable[Sequence[int]]) -> list[tuple[int, int]]:
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


def token_spans(tokenizer: Any, text: str, char_spans: Iterable[Sequence[int]],
                add_special_tokens: bool = False) -> list[tuple[int, int]]:
    """Token ranges ``[start, end)`` of ``char_spans`` in ``tokenizer(text)`` (a fast tokenizer's offsets)."""
    return _encode_with_spans(tokenizer, text, char_spans, add_special_tokens)[1]


def _encode_with_spans(tokenizer: Any, text: str, char_spans: Iterable[Sequence[int]],
                       add_special_tokens: bool = False) -> tuple[list[int], list[tuple[int, int]]]:
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
    if start < 0 or instruction[start:news_span[0]] != _NEWS_HEAD:
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
        if full[off:off + n] == content and full[:off] + full[off + n:] == empty:
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


def build_chat_example(tokenizer: Any, record: Mapping[str, Any], config: ChatConfig | None = None) -> dict[str, Any]:
    """``input_ids``, ``attention_mask``, ``labels`` (-100 on the prompt) and token ``user_span`` / ``news_span``.

    ``config.spans`` picks the spans (:data:`SPAN_SCHEMES`): the record's, or the official code's. The prompt and the response are tokenised separately (as at generation time, where the prompt is all the
    model has), so the label boundary is a token boundary. Spans are the record's character spans shifted by
    the instruction's offset in the rendered chat and mapped through the offset mapping. A response that
    does not fit ``max_length`` is cut; a prompt that does not fit raises (cutting it would lose the news).
    """
    cfg = config or ChatConfig()
    instruction, output = record["instruction"], record["output"]
    prompt, off, off_sys = chat_prompt(tokenizer, instruction, cfg)
    if cfg.spans == "official":
        try:
            block = official_news_block(instruction, record["news_span"])
        except RecordError as exc:
            raise RecordError(f"case {record.get('case_id')}: {exc}") from None
        news = [block[0] + off, block[1] + off]
        prompt_ids, (news_tok,) = _encode_with_spans(tokenizer, prompt, [news])
        user_tok = (0, news_tok[0])  # every token before the news block, template and system prompt included
    else:
        user = [record["user_span"][0] + off, record["user_span"][1] + off]
        if cfg.user_span_includes_system and getattr(tokenizer, "chat_template", None):
            user[0] = off_sys
        news = [record["news_span"][0] + off, record["news_span"][1] + off]
        prompt_ids, (user_tok, news_tok) = _encode_with_spans(tokenizer, prompt, [user, news])
    if getattr(tokenizer, "chat_template", None):
        full = tokenizer.apply_chat_template(_messages(cfg.system_prompt, instruction, output), tokenize=False)
        if not full.startswith(prompt):
            raise ValueError("the chat template renders the prompt differently once the answer is added")
        response = full[len(prompt):]
    else:
        response = output + (tokenizer.eos_token or "")
    response_ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    if len(prompt_ids) >= cfg.max_length:
        raise RecordError(f"case {record.get('case_id')}: prompt has {len(prompt_ids)} tokens ≥ max_length "
                          f"{cfg.max_length}")
    response_ids = response_ids[: cfg.max_length - len(prompt_ids)]
    return {
        "input_ids": prompt_ids + response_ids,
        "attention_mask": [1] * (len(prompt_ids) + len(response_ids)),
        "labels": [-100] * len(prompt_ids) + response_ids,
        "user_span": list(user_tok),
        "news_span": list(news_tok),
        "prompt_length": len(prompt_ids),
    }


# --------------------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------------------


def record_features():
    """The ``datasets`` schema of a record (explicit, so empty splits still have columns)."""
    from datasets import Features, List, Value

    text = Value("string")
    return Features({
        "instruction": text, "input": text, "output": text,
        "user_span": List(Value("int64"), length=2), "news_span": List(Value("int64"), length=2),
        "sentiment": text, "case_id": text, "topic_id": text, "user_id": text, "category": text, "split": text,
        "variant": text, "hashtag": text, "user_name": text, "history_ids": List(text),
    })


def build_records(cases: Iterable[Case], retrieval_cfg: Any | None = None,
                  persona_by_user: Mapping[str, Persona | str] | None = None,
                  variants: Sequence[str] = ("full",),
                  history_filter: Callable[[User], list[Post]] | None = None,
                  persona_by_user_topic: Mapping[tuple[str, str], Persona | str] | None = None,
                  ) -> list[dict[str, Any]]:
    """Records for ``cases`` × ``variants``; history = BM25 top-k of the user's history for the news.

    ``history_filter(user)`` returns the posts retrieval may choose from (e.g. ``clean.HistoryFilter()``, the
    official rules); by default the whole history. A user it returns no posts for is skipped with all their
    cases (counted in a warning), as upstream skips users with fewer than 10 posts left. The target post is
    removed from it (by id), as upstream does.

    Persona, first found: ``persona_by_user_topic[(user_id, topic_id)]`` (the official protocol: one persona per
    (user, topic), written from the posts retrieved for that news, see ``persona.personas_per_topic``), then
    ``persona_by_user[user_id]`` (ours: one persona per user), then ``case.user.persona``. A variant that needs
    one and finds none raises :class:`RecordError` naming the case.

    A case read from an official record (``case.record_parts``, from ``loaders.load_socialalign_cases``) is
    rendered from its own parts by :func:`render_parts_record`: its five posts and its persona as the record has
    them (no retrieval, no filter, no ``persona_by_user``), so its own variant comes back identical. Variants its
    record has no parts for (``full`` from a ``without_history`` record, or from a ``without_persona`` record
    with no persona given) are skipped and counted in a warning.
    """
    from .retrieval import RetrievalConfig, retrieve_history

    cfg = retrieval_cfg or RetrievalConfig(k=5)
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise RecordError(f"unknown variant(s) {bad}; choose from {VARIANTS}")
    needs_history = any(v != "without_history" for v in variants)
    by_topic = persona_by_user_topic or {}
    # keyed by the user *and* their history: the same user id may come with different histories (one per case)
    filtered: dict[tuple[str, tuple[str, ...]], list[Post]] = {}
    out, skipped, missing_parts = [], 0, 0
    for case in cases:
        uid = case.user.user_id
        topic_persona = by_topic.get((uid, case.topic.topic_id))
        if case.record_parts is not None:
            for v in variants:
                persona = topic_persona
                if persona is None and v != "without_persona" and case.record_parts.persona_text is None:
                    persona = (persona_by_user or {}).get(uid, case.user.persona)
                try:
                    out.append(render_parts_record(case, v, persona))
                except RecordError:
                    missing_parts += 1
            continue
        key = (uid, tuple(p.post_id for p in case.user.history))
        if key not in filtered:
            filtered[key] = history_filter(case.user) if history_filter else list(case.user.history)
        if history_filter is not None and not filtered[key]:
            skipped += 1  # the filter skipped this user (upstream: < 10 posts left), so upstream has no case
            continue
        history = [p for p in filtered[key] if p.post_id != case.response.post_id]
        posts = [p for p, _ in retrieve_history(history, case.topic.news, cfg)] if needs_history else []
        persona = topic_persona if topic_persona is not None else (persona_by_user or {}).get(uid, case.user.persona)
        out += [render_record(case, [] if v == "without_history" else posts, persona, v) for v in variants]
    if skipped:
        log.warning("history_filter left no posts for the users of %d case(s); those cases were skipped", skipped)
    if missing_parts:
        log.warning("%d (case, variant) pair(s) of official records skipped: the record lacks the history or persona "
                    "that variant needs", missing_parts)
    return out


def build_dataset(world_or_cases: World | Iterable[Case], retrieval_cfg: Any | None = None,
                  persona_by_user: Mapping[str, Persona | str] | None = None,
                  variants: Sequence[str] = ("full",), splits: Sequence[str] = SPLITS,
                  history_filter: Callable[[User], list[Post]] | None = None,
                  num_proc: int | None = None,
                  persona_by_user_topic: Mapping[tuple[str, str], Persona | str] | None = None) -> DatasetDict:
    """A ``DatasetDict`` with the world's splits: train / validation / test_user (unseen users) /
    test_topic (unseen topics) / test_both; every split present, possibly empty. Arguments as in
    :func:`build_records`.

    ``num_proc`` > 1 renders the cases in that many processes (``datasets.map``; retrieval tokenises every
    user's history per case, the slow part on a SentiWeibo-size set); the records and their order are the same.
    """
    from datasets import Dataset, DatasetDict

    cases = world_or_cases.cases() if hasattr(world_or_cases, "cases") else list(world_or_cases)
    if num_proc and num_proc > 1 and len(cases) > 1:
        def render(batch: dict[str, list[int]]) -> dict[str, list[Any]]:
            rows = build_records([cases[i] for i in batch["i"]], retrieval_cfg, persona_by_user, variants, history_filter,
                                 persona_by_user_topic)
            return {k: [r[k] for r in rows] for k in record_features()}

        index = Dataset.from_dict({"i": list(range(len(cases)))})
        shard = -(-len(cases) // (4 * num_proc))  # a few batches per process keep them evenly busy
        records = index.map(render, batched=True, batch_size=shard, num_proc=num_proc, remove_columns=["i"],
                            features=record_features(), desc="records").to_list()
    else:
        records = build_records(cases, retrieval_cfg, persona_by_user, variants, history_filter, persona_by_user_topic)
    unknown = sorted({r["split"] for r in records} - set(splits))
    if unknown:
        raise RecordError(f"cases carry split(s) {unknown} not in {list(splits)}")
    feats = record_features()

    def split_dataset(rows: list[dict[str, Any]]) -> Dataset:
        # from_list([]) fails on an empty split in datasets 4.x ("Keys mismatch"); columns of [] do not
        return Dataset.from_dict({k: [r[k] for r in rows] for k in feats}, features=feats)

    return DatasetDict({s: split_dataset([r for r in records if r["split"] == s]) for s in splits})


def export_jsonl(dataset: DatasetDict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write each split to ``{out_dir}/{split}.jsonl`` (atomically, via ``io.write_jsonl``)."""
    from .io import write_jsonl

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, ds in dataset.items():
        paths[split] = out / f"{split}.jsonl"
        write_jsonl(paths[split], ds.to_list())
    return paths
