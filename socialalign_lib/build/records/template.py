"""SocialAlign instruction records (Alpaca form): the official template, with its character spans by construction.

The official pipeline (docs/formats.md#socialalign-alpaca-json) fills a Chinese template — user name, five retrieved
history posts, the persona, the news, the trending hashtag, guidance — and PAC-LoRA later finds the news and user
parts again by *searching* the text for "现在你看到了一则新闻" and "，请发一条关于hashtag". A persona or a post that
contains those words breaks that silently. Here the template is assembled piece by piece and the character spans of
the user block (name + history + persona) and of the news text are recorded *while the string is built*.

Span units (docs/design.md#span-units): everything in this module is in **characters**. The record fields
``user_span`` / ``news_span`` are ``[start, end)`` character offsets into ``instruction`` (:data:`CHAR_SPAN_FIELDS`);
their names are kept as they are because they are written to disk and hashed into training-data fingerprints. Token
spans exist only after tokenising (:mod:`.chat`).

Record fields: ``instruction``, ``input`` (""), ``output`` (the real post), ``user_span``, ``news_span``
(``[start, end)`` character offsets into ``instruction``), ``sentiment``, ``case_id``, ``topic_id``,
``user_id``, ``category``, ``split``, ``variant``, plus ``hashtag``, ``user_name``, ``history_ids``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from socialalign_lib.data.schema import Case, Persona, Post

SYSTEM_PROMPT = "你是一个微博用户。"
VARIANTS: tuple[str, ...] = ("full", "without_persona", "without_history")
SPLITS: tuple[str, ...] = ("train", "validation", "test_user", "test_topic", "test_both")

_GUIDE_FIRST = {
    "full": "    - 可以参考你的个人信息、历史博文、用户画像和这则新闻，用自己的风格和立场发表观点",
    "without_persona": "    - 可以参考你的个人信息、历史博文和这则新闻，用自己的风格和立场发表观点",
    "without_history": "    - 可以参考你的个人信息、用户画像和这则新闻，用自己的风格和立场发表观点",
}
_GUIDE_REST = (
    "    - 这条微博的长度应与你的历史博文相似\n    - 不要强行参考历史信息\n    - 仅输出你发表的微博内容"
)
_ZH_NUM = "零一二三四五六七八九十"

#: The record fields that hold character spans (``[start, end)`` into ``instruction``): the user block's and the
#: news text's. A tokenised example reuses the same two names for *token* spans (:data:`.chat.TOKEN_SPAN_FIELDS`).
CHAR_SPAN_FIELDS: tuple[str, str] = ("user_span", "news_span")


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


def render_instruction(
    user_name: str,
    history_posts: Sequence[Post],
    persona: Persona | str | None,
    news: str,
    hashtag: str,
    variant: str = "full",
) -> tuple[str, tuple[int, int], tuple[int, int]]:
    """The official instruction text and the (start, end) character spans of the user block and the news.

    Wording and order are the official template's, including the spaces after "历史博文:" and "新闻:"; the
    only liberty: with fewer than five history posts the count word says how many there are.
    """
    persona_text = None if persona is None else render_persona(persona)
    return render_instruction_parts(
        user_name,
        [render_history_item(p) for p in history_posts],
        persona_text,
        news.replace("\\n", "\n"),
        hashtag,
        variant,
    )


def render_instruction_parts(
    user_name: str,
    history_items: Sequence[str],
    persona_text: str | None,
    news: str,
    hashtag: str,
    variant: str = "full",
) -> tuple[str, tuple[int, int], tuple[int, int]]:
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
    w.add(
        f"\n关于这个新闻的hashtag #{hashtag}# 登上了微博热搜，请发一条关于hashtag #{hashtag}# 的微博，请注意：\n"
    )
    w.add(_GUIDE_FIRST[variant] + "\n" + _GUIDE_REST)
    user, news_span = w.spans["user"], w.spans["news"]
    return w.text(), (user[0], user[1]), (news_span[0], news_span[1])


def render_record(
    case: Case, history_posts: Sequence[Post], persona: Persona | str | None, variant: str = "full"
) -> dict[str, Any]:
    """One Alpaca record for ``case`` from its retrieved ``history_posts`` and the user's persona."""
    try:
        instruction, user_span, news_span = render_instruction(
            case.user.screen_name, history_posts, persona, case.topic.news, case.topic.hashtag, variant
        )
    except RecordError as exc:
        raise RecordError(f"case {case.case_id} (user {case.user.user_id}): {exc}") from None
    return _record(case, instruction, user_span, news_span, variant, [p.post_id for p in history_posts])


def render_parts_record(
    case: Case, variant: str | None = None, persona: Persona | str | None = None
) -> dict[str, Any]:
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
        raise RecordError(
            f"case {case.case_id}: variant {variant!r} needs the history, which its "
            f"{parts.variant!r} record does not have"
        )
    persona_text = parts.persona_text if persona is None else render_persona(persona)
    try:
        instruction, user_span, news_span = render_instruction_parts(
            parts.user_name, parts.history, persona_text, parts.news, parts.hashtag, variant
        )
    except RecordError as exc:
        raise RecordError(f"case {case.case_id} (user {case.user.user_id}): {exc}") from None
    if variant == parts.variant and persona is None and instruction != parts.instruction:
        # the template is not the official one (another tool wrote the file): keep the record as it is
        from socialalign_lib.data.loaders.socialalign import parse_socialalign_instruction

        found = parse_socialalign_instruction(parts.instruction)
        if found["user_span"] is None or found["news_span"] is None:
            raise RecordError(f"case {case.case_id}: cannot find the user and news spans in its instruction")
        instruction, user_span, news_span = parts.instruction, found["user_span"], found["news_span"]
    history_ids = [] if variant == "without_history" else [p.post_id for p in case.user.history]
    return _record(case, instruction, user_span, news_span, variant, history_ids)


def _record(
    case: Case,
    instruction: str,
    user_span: Sequence[int],
    news_span: Sequence[int],
    variant: str,
    history_ids: list[str],
) -> dict[str, Any]:
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
    from socialalign_lib.data.loaders.socialalign import parse_socialalign_instruction

    if remove not in INFERENCE_ABLATIONS:
        raise RecordError(f"remove must be one of {sorted(INFERENCE_ABLATIONS)}, got {remove!r}")
    if record.get("variant", "full") != "full":
        raise RecordError(
            f"case {record.get('case_id')}: the inference ablation starts from a 'full' record, "
            f"got variant {record.get('variant')!r}"
        )
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
        raise RecordError(
            f"case {record.get('case_id')}: no user/news spans left after removing the {remove}"
        )
    out = dict(record)
    out.update(
        instruction=text,
        user_span=list(parts["user_span"]),
        news_span=list(parts["news_span"]),
        variant=INFERENCE_ABLATIONS[remove],
    )
    if remove == "history":
        out["history_ids"] = []
    return out
