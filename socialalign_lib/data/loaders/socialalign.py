"""The official SocialAlign Alpaca JSON (docs/formats.md#socialalign-alpaca-json): records taken apart into cases.

An official record was rendered once from a template (``full`` / ``without_persona`` / ``without_history``);
:func:`parse_socialalign_instruction` takes it apart (with the character spans PAC-LoRA routes on), and each
case keeps the record's parts verbatim (``Case.record_parts``) so ``records.build_records`` renders the identical
instruction again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from socialalign_lib.collect.crawler import topic_id_for

from ..errors import DataFormatError, PathLike
from ..persona_text import parse_persona_text
from ..read import iter_json_records
from ..schema import Case, Persona, Post, RecordParts, Topic, User
from ..text import extract_hashtags
from ._common import _str_field

__all__ = [
    "SocialAlignRecord",
    "parse_socialalign_instruction",
    "load_socialalign_alpaca",
    "load_socialalign_cases",
]

_HEAD = re.compile(r"你的用户名为(?P<name>.*?), (?=以下是你的)")
_HISTORY_HEAD = re.compile(r"以下是你的(?P<count>[^条\n]{1,4})条历史博文: ?\n")
_PERSONA_HEAD = "以下是你的用户画像："
_NEWS_HEAD = "现在你看到了一则新闻: "
_TAIL = re.compile(
    r"\n关于这个新闻的hashtag #(?P<tag>.*?)# 登上了微博热搜，请发一条关于hashtag #(?P=tag)# 的微博，请注意："
)


def _split_numbered(block: str) -> list[str]:
    """``"1. a\\n2. b\\n3. c"`` → ``["a", "b", "c"]``, splitting only at ``\\n{k}. `` for the next expected k,
    so an item that itself contains a newline or "2. " stays whole."""
    if not block.startswith("1. "):
        return [block] if block else []
    items, pos, k = [], 3, 2
    while True:
        nxt = block.find(f"\n{k}. ", pos)
        if nxt < 0:
            items.append(block[pos:])
            return items
        items.append(block[pos:nxt])
        pos, k = nxt + len(f"\n{k}. "), k + 1


def parse_socialalign_instruction(instruction: str) -> dict[str, Any]:
    """Take an official instruction apart (templates ``full`` / ``without_persona`` / ``without_history``).

    Returns ``variant`` (``None`` when the text matches no template), ``user_name``, ``history`` (the rendered
    items), ``persona_text``, ``news``, ``hashtag``, and the character spans ``user_span`` (name + history +
    persona) and ``news_span`` — the same spans ``records.render_instruction`` records, so PAC-LoRA can route
    on official data without the substring search the official code uses. Missing parts are ``None``.
    """
    out: dict[str, Any] = {
        "variant": None,
        "user_name": None,
        "history": [],
        "persona_text": None,
        "news": None,
        "hashtag": None,
        "user_span": None,
        "news_span": None,
    }
    head = _HEAD.match(instruction)
    tail = None
    for m in _TAIL.finditer(instruction):  # the last one: the news text could quote the sentence
        tail = m
    news_at = instruction.find("\n" + _NEWS_HEAD + "\n")
    if head is None or tail is None or news_at < 0:
        return out
    out["user_name"] = head.group("name")
    out["hashtag"] = tail.group("tag")
    news_start = news_at + len(_NEWS_HEAD) + 2
    if news_start <= tail.start():
        out["news"] = instruction[news_start : tail.start()]
        out["news_span"] = (news_start, tail.start())
    out["user_span"] = (0, news_at)
    pos = head.end()
    user_block = instruction[pos:news_at]
    hist = _HISTORY_HEAD.match(user_block)
    persona_at = user_block.find(_PERSONA_HEAD + "\n")
    if hist is not None:
        end = persona_at - 1 if persona_at > 0 and user_block[persona_at - 1] == "\n" else len(user_block)
        out["history"] = _split_numbered(user_block[hist.end() : end])
    if persona_at >= 0:
        out["persona_text"] = user_block[persona_at + len(_PERSONA_HEAD) + 1 :]
    if hist is not None and persona_at >= 0:
        out["variant"] = "full"
    elif hist is not None:
        out["variant"] = "without_persona"
    elif persona_at == 0:
        out["variant"] = "without_history"
    return out


def _history_post(item: str, post_id: str, user_id: str, user_name: str | None) -> Post:
    """A rendered history item back to a post: ``你转发了微博: X, 并评论说: Y`` → post Y reposting X. The
    split is at the *last* ", 并评论说: " (the quoted original is long and arbitrary; the comment short)."""
    m = None
    if item.startswith("你转发了微博: "):
        cut = item.rfind(", 并评论说: ")
        if cut >= 0:
            m = (item[len("你转发了微博: ") : cut], item[cut + len(", 并评论说: ") :])
    if m is None:
        return Post(
            post_id=post_id,
            user_id=user_id,
            text=item,
            created_at="",
            hashtags=extract_hashtags(item),
            screen_name=user_name,
        )
    rt_text, text = m
    retweet = Post(
        post_id=f"{post_id}-rt", user_id="", text=rt_text, created_at="", hashtags=extract_hashtags(rt_text)
    )
    return Post(
        post_id=post_id,
        user_id=user_id,
        text=text,
        created_at="",
        hashtags=extract_hashtags(text),
        retweet=retweet,
        screen_name=user_name,
    )


@dataclass
class SocialAlignRecord:
    """One official Alpaca record, its raw fields kept, plus what could be parsed out of the instruction.

    The official records carry no ids, times, categories or labels: ``to_case`` derives stable ids
    (``user_id = "name:" + user_name``; topic id from the hashtag, as the crawler does), leaves times and
    category empty, and ``sentiment`` empty ("not labelled yet"). The case keeps the record's own parts
    (``Case.record_parts``: the five posts retrieved for *this* news, the persona as written) so that
    ``records.build_records`` renders the identical instruction, whatever other cases the same user has.
    """

    index: int
    line: int
    instruction: str
    input: str
    output: str
    variant: str | None
    user_name: str | None
    history: list[str]
    persona_text: str | None
    persona: Persona | None
    news: str | None
    hashtag: str | None
    user_span: tuple[int, int] | None
    news_span: tuple[int, int] | None
    extra: dict[str, Any] = field(default_factory=dict)  # other keys of the record (e.g. "SocialLLM" outputs)

    def to_case(self, case_id: str | None = None) -> Case:
        if self.user_name is None or self.news is None or self.hashtag is None:
            raise DataFormatError(
                "instruction matches none of the official templates; cannot build a Case",
                line=self.line,
                field="instruction",
            )
        cid = case_id or f"sa{self.index:06d}"
        uid = f"name:{self.user_name}"
        history = [
            _history_post(item, f"{cid}-h{i}", uid, self.user_name) for i, item in enumerate(self.history)
        ]
        topic = Topic(
            topic_id=topic_id_for(self.hashtag), hashtag=self.hashtag, news=self.news, category="", time=""
        )
        user = User(user_id=uid, screen_name=self.user_name, history=history, persona=self.persona)
        response = Post(
            post_id=f"{cid}-r",
            user_id=uid,
            text=self.output,
            created_at="",
            hashtags=extract_hashtags(self.output),
            screen_name=self.user_name,
        )
        parts = None
        if self.variant is not None:
            parts = RecordParts(
                user_name=self.user_name,
                history=list(self.history),
                persona_text=self.persona_text,
                news=self.news,
                hashtag=self.hashtag,
                variant=self.variant,
                instruction=self.instruction,
            )
        return Case(case_id=cid, topic=topic, user=user, response=response, sentiment="", record_parts=parts)


def load_socialalign_alpaca(path: PathLike, *, encoding: str = "utf-8") -> list[SocialAlignRecord]:
    """The official ``SocialWeibo*.json`` (a JSON list; JSON Lines also accepted) → parsed records.

    ``instruction`` and ``output`` must be strings; ``input`` defaults to "". An instruction that matches
    no template is kept with ``variant=None`` (parse what is parseable)."""
    out = []
    for index, (line, rec) in enumerate(iter_json_records(path, encoding=encoding)):
        if not isinstance(rec, dict):
            raise DataFormatError(f"expected an object, got {type(rec).__name__}", file=path, line=line)
        instruction = _str_field(rec, "instruction", path, line)
        output = _str_field(rec, "output", path, line)
        inp = _str_field(rec, "input", path, line, required=False) or ""
        parts = parse_socialalign_instruction(instruction)
        persona_text = parts["persona_text"]
        out.append(
            SocialAlignRecord(
                index=index,
                line=line,
                instruction=instruction,
                input=inp,
                output=output,
                variant=parts["variant"],
                user_name=parts["user_name"],
                history=parts["history"],
                persona_text=persona_text,
                persona=parse_persona_text(persona_text) if persona_text else None,
                news=parts["news"],
                hashtag=parts["hashtag"],
                user_span=parts["user_span"],
                news_span=parts["news_span"],
                extra={k: v for k, v in rec.items() if k not in ("instruction", "input", "output")},
            )
        )
    return out


def load_socialalign_cases(path: PathLike, *, encoding: str = "utf-8") -> list[Case]:
    """The official Alpaca JSON → :class:`Case` list, one per record, each with its ``record_parts``
    (``without_history`` records give users with no history). ``records.build_records`` renders each case's own
    variant back to the identical instruction.

    Raises on a record whose instruction matches no template, naming its line."""
    cases = []
    for rec in load_socialalign_alpaca(path, encoding=encoding):
        try:
            cases.append(rec.to_case())
        except DataFormatError as err:
            raise DataFormatError(err.problem, file=path, line=rec.line, field=err.field) from None
    return cases
