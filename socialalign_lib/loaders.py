"""Loaders for the real data formats (docs/formats.md), mapped onto the shared schema.

The embedded world is the default; these are for users who bring real files: the official SocialAlign
Alpaca JSON, the weibo-crawler user JSON / CSV (and weibo-search CSV), a ``userid,text`` post CSV in GB18030,
LaMP questions + outputs, SMPD / SMHP2018 / TPIC2017 popularity files, and PopALM's JSON Lines. Each loader
checks what it reads and raises :class:`~socialalign_lib.io.DataFormatError` naming file, line and field,
because a real dump that is wrong in row 48 213 is otherwise found three notebooks later as a NaN.

Loaders change text only where the format demands it (e.g. the crawler's ``"\\t"`` after ids); cleaning is
``socialalign_lib.clean``'s job. Hashtags inside text (``#…#``) come from ``clean.extract_hashtags``, the
library's one hashtag rule. Count strings (``"1.2万"``, ``"100万+"``) and Weibo times
(absolute, ``%Y-%m-%d %H:%M:%S``, 刚刚 / N分钟前 / 昨天 HH:MM relative to ``now``) are read by the crawler's
own :func:`parse_count` and :func:`parse_weibo_time`, re-exported here, so crawled and loaded data agree.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io as _stdio
import math
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .clean import extract_hashtags as _clean_extract
from .collect.crawler import topic_id_for
from .collect.parse import ParseError, parse_count, parse_weibo_time
from .io import DataFormatError, PathLike, iter_json_records, iter_jsonl_numbered, read_json, read_text
from .persona_text import parse_persona_text  # re-exported: the one persona parser
from .schema import Case, Persona, Post, RecordParts, Response, Topic, User

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "parse_count", "parse_weibo_time", "extract_hashtags",
    "SocialAlignRecord", "parse_socialalign_instruction", "load_socialalign_alpaca", "load_socialalign_cases",
    "load_weibo_crawler_json", "load_weibo_crawler_dir", "load_weibo_crawler_csv", "load_weibo_search_csv",
    "PostsCsv", "load_posts_csv", "load_daily_posts", "day_from_filename",
    "LAMP_PREFIXES", "load_lamp",
    "SMP_COLUMNS", "load_smpd", "load_tpic2017",
    "PopalmThread", "PopalmPair", "load_popalm_sft", "load_popalm_pairs", "popalm_to_schema",
]

_GENDER = {"f": "女", "m": "男"}  # the crawler's f/m → the schema's (and the world's) convention


def extract_hashtags(text: str) -> list[str]:
    """Hashtags in ``text`` without the ``#``s, first occurrence order, no duplicates: ``clean.extract_hashtags``
    (the library's one hashtag rule, ``clean.HASHTAG``)."""
    return _clean_extract(text or "")


def _stable_id(prefix: str, *parts: str) -> str:
    return prefix + hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:10]


def _count(value: Any, path: PathLike, line: int | None, fieldname: str) -> int:
    try:
        return parse_count(value)
    except ParseError as err:
        raise DataFormatError(str(err), file=path, line=line, field=fieldname) from None


def _time(value: Any, now: dt.datetime | None, path: PathLike, line: int | None, fieldname: str) -> str:
    try:
        return parse_weibo_time(str(value), now)
    except ParseError as err:
        raise DataFormatError(str(err), file=path, line=line, field=fieldname) from None


def _str_field(rec: Mapping[str, Any], key: str, path: PathLike, line: int | None, where: str = "",
               required: bool = True) -> str | None:
    name = f"{where}.{key}" if where else key
    if key not in rec or rec[key] is None:
        if required:
            raise DataFormatError("missing", file=path, line=line, field=name)
        return None
    value = rec[key]
    if not isinstance(value, str):
        raise DataFormatError(f"expected str, got {type(value).__name__} ({str(value)[:40]!r})", file=path,
                              line=line, field=name)
    return value


# ============================================================================================================
# (a) SocialAlign Alpaca records (docs/formats.md#socialalign-alpaca-json)
# ============================================================================================================

_HEAD = re.compile(r"你的用户名为(?P<name>.*?), (?=以下是你的)")
_HISTORY_HEAD = re.compile(r"以下是你的(?P<count>[^条\n]{1,4})条历史博文: ?\n")
_PERSONA_HEAD = "以下是你的用户画像："
_NEWS_HEAD = "现在你看到了一则新闻: "
_TAIL = re.compile(r"\n关于这个新闻的hashtag #(?P<tag>.*?)# 登上了微博热搜，请发一条关于hashtag #(?P=tag)# 的微博，请注意：")
_REPOST = re.compile(r"你转发了微博: (?P<rt>.*), 并评论说: (?P<text>.*)", re.S)


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
    out: dict[str, Any] = {"variant": None, "user_name": None, "history": [], "persona_text": None, "news": None,
                           "hashtag": None, "user_span": None, "news_span": None}
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
        out["news"] = instruction[news_start:tail.start()]
        out["news_span"] = (news_start, tail.start())
    out["user_span"] = (0, news_at)
    pos = head.end()
    user_block = instruction[pos:news_at]
    hist = _HISTORY_HEAD.match(user_block)
    persona_at = user_block.find(_PERSONA_HEAD + "\n")
    if hist is not None:
        end = persona_at - 1 if persona_at > 0 and user_block[persona_at - 1] == "\n" else len(user_block)
        out["history"] = _split_numbered(user_block[hist.end():end])
    if persona_at >= 0:
        out["persona_text"] = user_block[persona_at + len(_PERSONA_HEAD) + 1:]
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
            m = (item[len("你转发了微博: "):cut], item[cut + len(", 并评论说: "):])
    if m is None:
        return Post(post_id=post_id, user_id=user_id, text=item, created_at="", hashtags=extract_hashtags(item),
                    screen_name=user_name)
    rt_text, text = m
    retweet = Post(post_id=f"{post_id}-rt", user_id="", text=rt_text, created_at="",
                   hashtags=extract_hashtags(rt_text))
    return Post(post_id=post_id, user_id=user_id, text=text, created_at="", hashtags=extract_hashtags(text),
                retweet=retweet, screen_name=user_name)


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
            raise DataFormatError("instruction matches none of the official templates; cannot build a Case",
                                  line=self.line, field="instruction")
        cid = case_id or f"sa{self.index:06d}"
        uid = f"name:{self.user_name}"
        history = [_history_post(item, f"{cid}-h{i}", uid, self.user_name) for i, item in enumerate(self.history)]
        topic = Topic(topic_id=topic_id_for(self.hashtag), hashtag=self.hashtag, news=self.news, category="", time="")
        user = User(user_id=uid, screen_name=self.user_name, history=history, persona=self.persona)
        response = Post(post_id=f"{cid}-r", user_id=uid, text=self.output, created_at="",
                        hashtags=extract_hashtags(self.output), screen_name=self.user_name)
        parts = None
        if self.variant is not None:
            parts = RecordParts(user_name=self.user_name, history=list(self.history), persona_text=self.persona_text,
                                news=self.news, hashtag=self.hashtag, variant=self.variant,
                                instruction=self.instruction)
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
        out.append(SocialAlignRecord(
            index=index, line=line, instruction=instruction, input=inp, output=output, variant=parts["variant"],
            user_name=parts["user_name"], history=parts["history"], persona_text=persona_text,
            persona=parse_persona_text(persona_text) if persona_text else None, news=parts["news"],
            hashtag=parts["hashtag"], user_span=parts["user_span"], news_span=parts["news_span"],
            extra={k: v for k, v in rec.items() if k not in ("instruction", "input", "output")}))
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


# ============================================================================================================
# (b) weibo-crawler user JSON / CSV and weibo-search CSV (docs/formats.md#crawler-outputs)
# ============================================================================================================


def _topics_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(t).strip() for t in value if str(t).strip()]
    return [t.strip() for t in str(value or "").split(",") if t.strip()]


def _crawler_post(rec: Any, where: str, path: PathLike, now: dt.datetime | None, user_id: str,
                  screen_name: str | None, parent_id: str | None = None) -> Post:
    """One ``weibo[i]`` item (crawler form, or SocialAlign's cleaned form with ``post_time``) → Post."""
    if not isinstance(rec, dict):
        raise DataFormatError(f"expected an object, got {type(rec).__name__}", file=path, field=where)
    pid = rec.get("id")
    if pid is None or str(pid).strip() == "":
        if parent_id is None:
            raise DataFormatError("missing", file=path, field=f"{where}.id")
        pid = f"{parent_id}-rt"
    text = _str_field(rec, "text", path, None, where)
    for key in ("full_created_at", "post_time", "created_at"):
        if rec.get(key):
            created = _time(rec[key], now, path, None, f"{where}.{key}")
            break
    else:
        raise DataFormatError("missing (no full_created_at, post_time or created_at)", file=path,
                              field=f"{where}.created_at")
    tags = _topics_list(rec.get("topics")) or extract_hashtags(text)
    retweet = None
    if isinstance(rec.get("retweet"), dict):
        rt = rec["retweet"]
        retweet = _crawler_post(rt, f"{where}.retweet", path, now, str(rt.get("user_id", "") or ""),
                                rt.get("screen_name"), parent_id=str(pid))
    uid = str(rec.get("user_id") or user_id)
    return Post(post_id=str(pid).strip(), user_id=uid, text=text, created_at=created, hashtags=tags, retweet=retweet,
                likes=_count(rec.get("attitudes_count"), path, None, f"{where}.attitudes_count"),
                reposts=_count(rec.get("reposts_count"), path, None, f"{where}.reposts_count"),
                comments=_count(rec.get("comments_count"), path, None, f"{where}.comments_count"),
                screen_name=rec.get("screen_name") or screen_name)


def load_weibo_crawler_json(path: PathLike, *, now: dt.datetime | None = None, encoding: str = "utf-8",
                            allow_empty_history: bool = False) -> User:
    """weibo-crawler's ``{uid}.json`` = ``{"user": {...}, "weibo": [...]}`` → a :class:`User` whose history is
    the timeline. ``now`` resolves relative times (刚刚, N分钟前, 昨天 …) should a dump contain them.

    Gender f/m becomes 女/男; ``followers_count`` may be a display string ("1.2万")."""
    doc = read_json(path, encoding=encoding)
    if not isinstance(doc, dict):
        raise DataFormatError(f"expected an object with 'user' and 'weibo', got {type(doc).__name__}", file=path)
    info = doc.get("user")
    if not isinstance(info, dict):
        raise DataFormatError("missing" if info is None else "expected an object", file=path, field="user")
    if info.get("id") in (None, ""):
        raise DataFormatError("missing", file=path, field="user.id")
    uid, name = str(info["id"]), info.get("screen_name") or ""
    posts = doc.get("weibo")
    if not isinstance(posts, list):
        raise DataFormatError("missing" if posts is None else "expected a list", file=path, field="weibo")
    if not posts and not allow_empty_history:
        raise DataFormatError("empty history (the user has no posts)", file=path, field="weibo")
    history = [_crawler_post(p, f"weibo[{i}]", path, now, uid, name) for i, p in enumerate(posts)]
    gender = info.get("gender")
    return User(user_id=uid, screen_name=name, history=history, gender=_GENDER.get(gender, gender),
                location=info.get("location") or None, description=info.get("description") or None,
                followers=_count(info.get("followers_count"), path, None, "user.followers_count"))


def load_weibo_crawler_dir(root: PathLike, *, now: dt.datetime | None = None) -> list[User]:
    """Every ``{uid}.json`` under ``root`` (the crawler's ``weibo/{uid}/{uid}.json`` layout), sorted by path;
    users with no posts are skipped, as the dataset construction skips them."""
    users = []
    for p in sorted(Path(root).rglob("*.json")):
        if p.stem.isdigit():
            user = load_weibo_crawler_json(p, now=now, allow_empty_history=True)
            if user.history:
                users.append(user)
    return users


def _csv_rows(path: PathLike, encoding: str, torn_tail: str = "error") -> Iterator[tuple[int, dict[str, str]]]:
    """``(line, row)`` of a CSV with a header; ``line`` is the physical line where the row ends (``csv``'s
    ``line_num``), which is the row's line for single-line rows.

    A cut-off file is an error, not a shorter dataset: every CSV writer (``csv``, pandas, Excel, the crawlers)
    ends each row with a line break, so a last row without one — or with a quoted cell that never closes — is
    what an interrupted download or copy leaves, and its text stops mid-sentence. ``torn_tail``: ``"error"``
    (default) raises naming the file and line; ``"drop"`` drops that last row with a warning; ``"keep"`` keeps
    it (for a hand-written file known to be complete). A row with fewer or more cells than the header is an
    error too (``csv`` would silently fill missing cells with nothing).
    """
    if torn_tail not in ("error", "drop", "keep"):
        raise ValueError(f"torn_tail must be 'error', 'drop' or 'keep', not {torn_tail!r}")
    text = read_text(path, encoding=encoding)
    reader = csv.DictReader(_stdio.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise DataFormatError("empty CSV (no header)", file=path, line=1)
    reader.fieldnames = names = [f.strip() for f in reader.fieldnames]
    rows = iter(reader)
    first = reader.line_num + 1  # first physical line of the next row
    row = next(rows, None)
    while row is not None:
        line, row_first = reader.line_num, first
        first = line + 1
        following = next(rows, None)
        # the last row: a quoted cell left open (odd number of '"') or no final line break means a cut file
        quote = following is None and "".join(
            _stdio.StringIO(text, newline="").readlines()[row_first - 1:]).count('"') % 2 == 1
        if following is None and (quote or not text.endswith(("\n", "\r"))):
            where = "inside a quoted cell that never closes" if quote else "without a line break"
            problem = (f"the file ends {where}: the last row looks cut off (a truncated download or copy?); "
                       "torn_tail='drop' drops it, 'keep' keeps it")
            if torn_tail == "error":
                raise DataFormatError(problem, file=path, line=row_first)
            if torn_tail == "drop":
                warnings.warn(f"{path} line {row_first}: {problem}; dropped", stacklevel=3)
                return
        if None in row:  # more cells than header columns
            raise DataFormatError(f"{len(names) + len(row[None])} cells for {len(names)} columns", file=path,
                                  line=line)
        missing = [k for k, v in row.items() if v is None]
        if missing and not (following is None and torn_tail == "keep"):
            raise DataFormatError(f"{len(names) - len(missing)} cells for {len(names)} columns", file=path,
                                  line=line, field=missing[0])
        yield line, {k: (v if v is not None else "") for k, v in row.items()}
        row = following


def _need(row: Mapping[str, str], names: Sequence[str], path: PathLike, line: int) -> str:
    for n in names:
        if n in row:
            return row[n]
    raise DataFormatError(f"missing column (expected one of {list(names)})", file=path, line=line, field=names[0])


def _csv_post(row: Mapping[str, str], line: int, path: PathLike, now: dt.datetime | None, user_id: str,
              screen_name: str | None, prefix: str = "") -> Post:
    p = prefix
    pid = _need(row, [p + "id"], path, line).strip()  # the crawler appends "\t" to ids so Excel keeps them
    if not pid:
        raise DataFormatError("empty", file=path, line=line, field=p + "id")
    text = _need(row, [p + "正文", p + "微博正文"], path, line)
    date_col = next((c for c in (p + "完整日期", p + "发布时间", p + "日期") if row.get(c, "").strip()), None)
    if date_col is None:
        raise DataFormatError("missing date (完整日期 / 发布时间 / 日期)", file=path, line=line, field=p + "完整日期")
    created = _time(row[date_col].strip(), now, path, line, date_col)
    tags = _topics_list(row.get(p + "话题")) or extract_hashtags(text)
    counts = {k: _count(row.get(p + col, "").strip() or 0, path, line, p + col)
              for k, col in (("likes", "点赞数"), ("comments", "评论数"), ("reposts", "转发数"))}
    return Post(post_id=pid, user_id=user_id, text=text, created_at=created, hashtags=tags,
                screen_name=screen_name, **counts)


def load_weibo_crawler_csv(path: PathLike, *, user_id: str | None = None, screen_name: str | None = None,
                           now: dt.datetime | None = None, encoding: str = "utf-8-sig") -> list[Post]:
    """weibo-crawler's ``{screen_name or uid}/{uid}.csv`` (utf-8-sig; ``id, bid, 正文, …, 点赞数, 评论数, 转发数,
    话题, …, 完整日期, …``) → posts. The rows carry no user id: it defaults to the file name, the screen name
    to the folder name when that differs. Reposts (``是否原创`` False) get their original from the
    ``源微博…`` columns."""
    p = Path(path)
    uid = user_id if user_id is not None else p.stem
    name = screen_name if screen_name is not None else (p.parent.name if p.parent.name not in ("", uid) else None)
    posts = []
    for line, row in _csv_rows(p, encoding):
        post = _csv_post(row, line, p, now, uid, name)
        if row.get("是否原创", "").strip().lower() == "false" and row.get("源微博id", "").strip():
            rt = _csv_post(row, line, p, now, row.get("源用户id", "").strip(), row.get("源用户昵称") or None,
                           prefix="源微博")
            post.retweet = rt
        posts.append(post)
    return posts


def load_weibo_search_csv(path: PathLike, *, now: dt.datetime | None = None,
                          encoding: str = "utf-8-sig") -> list[Post]:
    """weibo-search's ``{keyword}.csv`` (``id, bid, user_id, 用户昵称, 微博正文, …, 话题, 转发数, 评论数, 点赞数,
    发布时间, …, retweet_id``) → posts. A repost's original is a separate row that ``retweet_id`` names; when
    it is in the file it is also attached as ``retweet``."""
    p = Path(path)
    posts, retweet_of = [], {}
    for line, row in _csv_rows(p, encoding):
        uid = _need(row, ["user_id"], p, line).strip()
        post = _csv_post(row, line, p, now, uid, row.get("用户昵称") or None)
        if row.get("retweet_id", "").strip():
            retweet_of[len(posts)] = row["retweet_id"].strip()
        posts.append(post)
    by_id = {post.post_id: post for post in posts}
    for i, rid in retweet_of.items():
        if rid in by_id and rid != posts[i].post_id:
            posts[i].retweet = by_id[rid]
    return posts


# ============================================================================================================
# (c) a plain post CSV (userid,text), typically GB18030
# ============================================================================================================


@dataclass
class PostsCsv:
    """Topics (one per hashtag), users (all their posts as history) and responses (each hashtagged post
    is a response to each of its hashtags' topics; unlabelled). Topic ``news`` and ``category`` are
    unknown in such a file and left empty."""

    topics: list[Topic]
    users: list[User]
    responses: list[Response]


def load_posts_csv(path: PathLike, *, encoding: str = "auto", user_col: str = "userid", text_col: str = "text",
                   id_col: str | None = None, time_col: str | None = None, now: dt.datetime | None = None,
                   torn_tail: str = "error", default_time: str = "") -> PostsCsv:
    """A CSV of posts with at least ``userid,text`` (hashtags inline as ``#…#``), as Chinese research dumps
    ship them, usually in GB18030.

    ``encoding="auto"`` (default) takes the first *strict* decode of UTF-8 (with or without BOM) and GB18030,
    so a UTF-8 file is never read as GB18030 mojibake (or the reverse); name an encoding to insist on it.
    A file cut off mid-row raises (see ``torn_tail``: "error", "drop" or "keep"), naming file and line.
    Post ids come from ``id_col`` if given, else ``"{file stem}-L{line}"``; times from ``time_col`` (any form
    :func:`parse_weibo_time` reads), else ``default_time``. Users and topics are in first-appearance order.
    """
    return _merge_posts([path], encoding=encoding, user_col=user_col, text_col=text_col, id_col=id_col,
                        time_col=time_col, now=now, torn_tail=torn_tail, times=[default_time])


_DAY_IN_NAME = re.compile(r"(?<!\d)(\d{4})[-_.]?(\d{2})[-_.]?(\d{2})(?!\d)")


def day_from_filename(path: PathLike) -> str:
    """``"YYYY-MM-DD"`` from a file name holding a date (``2020-01-23.csv``, ``weibo_20200123.csv``,
    ``2020_01_23.csv``); a :class:`DataFormatError` naming the file when there is none or it is no real date."""
    m = _DAY_IN_NAME.search(Path(path).stem)
    if m is None:
        raise DataFormatError("no date (YYYY-MM-DD or YYYYMMDD) in the file name; pass days= explicitly",
                              file=path)
    try:
        return dt.date(int(m[1]), int(m[2]), int(m[3])).isoformat()
    except ValueError:
        raise DataFormatError(f"{m[0]!r} in the file name is not a date", file=path) from None


def load_daily_posts(source: PathLike | Iterable[PathLike], *, pattern: str = "*.csv",
                     days: Sequence[str] | None = None, encoding: str = "auto", user_col: str = "userid",
                     text_col: str = "text", id_col: str | None = None, time_col: str | None = None,
                     now: dt.datetime | None = None, torn_tail: str = "error") -> PostsCsv:
    """Daily ``userid,text`` exports (one CSV per day, the day in the file name) merged into one dataset:
    each user is *one* :class:`User` whose history holds their posts of every day, in day order; each hashtag
    is one topic across days. ``source`` is a folder (files matching ``pattern``, sorted by day) or a list
    of files.

    Without ``time_col`` a post's ``created_at`` is its file's day (``days[i]`` for the i-th file, else
    :func:`day_from_filename`), so crowds can be split per day later. Every file is checked like
    :func:`load_posts_csv` (strict encoding, cut-off rows, short rows), and errors name the file and line.
    """
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        files = sorted(Path(source).glob(pattern))
        if not files:
            raise DataFormatError(f"no file matches {pattern!r}", file=source)
    elif isinstance(source, (str, Path)):
        files = [Path(source)]
    else:
        files = [Path(f) for f in source]
    if days is not None and len(days) != len(files):
        raise ValueError(f"{len(days)} days for {len(files)} files")
    day_of = list(days) if days is not None else [day_from_filename(f) for f in files]
    order = sorted(range(len(files)), key=lambda i: (day_of[i], str(files[i])))
    return _merge_posts([files[i] for i in order], encoding=encoding, user_col=user_col, text_col=text_col,
                        id_col=id_col, time_col=time_col, now=now, torn_tail=torn_tail,
                        times=[day_of[i] for i in order])


def _merge_posts(paths: Sequence[PathLike], *, encoding: str, user_col: str, text_col: str, id_col: str | None,
                 time_col: str | None, now: dt.datetime | None, torn_tail: str, times: Sequence[str]) -> PostsCsv:
    topics: dict[str, Topic] = {}
    users: dict[str, User] = {}
    responses: list[Response] = []
    for path, default_time in zip(paths, times, strict=True):
        p = Path(path)
        for line, row in _csv_rows(p, encoding, torn_tail):
            uid = _need(row, [user_col], p, line).strip()
            if not uid:
                raise DataFormatError("empty", file=p, line=line, field=user_col)
            text = _need(row, [text_col], p, line)
            pid = _need(row, [id_col], p, line).strip() if id_col else f"{p.stem}-L{line}"
            created = (_time(_need(row, [time_col], p, line).strip(), now, p, line, time_col) if time_col
                       else default_time)
            post = Post(post_id=pid, user_id=uid, text=text, created_at=created, hashtags=extract_hashtags(text))
            users.setdefault(uid, User(user_id=uid, screen_name=uid, history=[])).history.append(post)
            for tag in post.hashtags:
                tid = topic_id_for(tag)
                if tid not in topics:
                    topics[tid] = Topic(topic_id=tid, hashtag=tag, news="", category="", time=created)
                responses.append(Response(topic_id=tid, post=post, sentiment=""))
    return PostsCsv(list(topics.values()), list(users.values()), responses)


# ============================================================================================================
# (d) LaMP (docs/formats.md#lamp)
# ============================================================================================================

LAMP_PREFIXES: dict[str, str] = {
    "LaMP_4": "Generate a headline for the following article: ",
    "LaMP_5": "Generate a title for the following abstract of a paper: ",
    "LaMP_6": "Generate a subject for the following email: ",
    "LaMP_7": "Paraphrase the following tweet without any explanation before or after it: ",
    "LaMP_3": "What is the score of the following review on a scale of 1 to 5? just answer with 1, 2, 3, 4, "
              "or 5 without further explanation. review: ",
}
"""Input prefixes of the generation tasks (and LaMP-3); the rest of ``input`` is the item the user responds to."""

# profile item → (the user's own text, the context it responds to)
_LAMP_PROFILE: dict[str, tuple[str, str | None]] = {
    "LaMP_4": ("title", "text"), "LaMP_5": ("title", "abstract"), "LaMP_6": ("title", "text"),
    "LaMP_7": ("text", None), "LaMP_3": ("text", None), "LaMP_1": ("title", "abstract"),
    "LaMP_2": ("tag", "description"),
}


def _lamp_task(name: str) -> str:
    m = re.fullmatch(r"(?i)lamp[-_ ]?(\d)", name.strip())
    if not m:
        raise ValueError(f"unknown LaMP task {name!r}; expected LaMP_1 .. LaMP_7")
    return f"LaMP_{m.group(1)}"


def _guess_lamp_task(inp: str) -> str | None:
    for task, prefix in LAMP_PREFIXES.items():
        if inp.startswith(prefix):
            return task
    return None


def _lamp_golds(path: PathLike, encoding: str) -> tuple[str | None, dict[str, str]]:
    doc = read_json(path, encoding=encoding)
    task, golds = None, doc
    if isinstance(doc, dict):
        task = doc.get("task")
        golds = doc.get("golds")
        if not isinstance(golds, list):
            raise DataFormatError("missing" if golds is None else "expected a list", file=path, field="golds")
    if not isinstance(golds, list):
        raise DataFormatError('expected {"task", "golds": [...]} or a list of {"id", "output"}', file=path)
    out: dict[str, str] = {}
    for i, g in enumerate(golds):
        if not isinstance(g, dict) or "id" not in g or not isinstance(g.get("output"), str):
            raise DataFormatError("expected {id, output: str}", file=path, field=f"golds[{i}]")
        out[str(g["id"])] = g["output"]
    return (_lamp_task(task) if isinstance(task, str) else None), out


def load_lamp(questions_path: PathLike, outputs_path: PathLike | None = None, *, task: str | None = None,
              encoding: str = "utf-8") -> list[Case]:
    """LaMP ``*_questions.json`` (+ ``*_outputs.json``) → :class:`Case` list.

    Mapping (generation tasks 4/5/7; others by the same rule): the ``profile`` is the user's history, each
    item a post whose text is what the user *wrote* (LaMP-4/5 ``title``, LaMP-7 ``text``) and, where the item
    has one, whose ``retweet`` holds what they wrote it *about* (LaMP-4 article ``text``, LaMP-5 ``abstract``)
    — the same shape as a Weibo repost with a comment. The question becomes the topic: ``news`` is the
    ``input`` without its task prefix (:data:`LAMP_PREFIXES`), ``category`` the task, ``hashtag`` empty. The
    response is the gold output ("" without an outputs file). ``user_id`` is the question's ``user_id``
    (time-based split) or ``"lamp-{id}"``.
    """
    gold_task, golds = (None, {}) if outputs_path is None else _lamp_golds(outputs_path, encoding)
    task_name = _lamp_task(task) if task else gold_task
    cases = []
    seen: set[str] = set()
    for i, (line, q) in enumerate(iter_json_records(questions_path, encoding=encoding)):
        if not isinstance(q, dict):
            raise DataFormatError(f"expected an object, got {type(q).__name__}", file=questions_path, line=line)
        qid = q.get("id")
        if qid is None:
            raise DataFormatError("missing", file=questions_path, line=line, field=f"[{i}].id")
        qid = str(qid)
        inp = _str_field(q, "input", questions_path, line, f"[{i}]")
        profile = q.get("profile")
        if not isinstance(profile, list):
            raise DataFormatError("missing" if profile is None else "expected a list", file=questions_path,
                                  line=line, field=f"[{i}].profile")
        if not profile:
            raise DataFormatError("empty history (empty profile)", file=questions_path, line=line,
                                  field=f"[{i}].profile")
        t = task_name or _guess_lamp_task(inp)
        if t is None:
            raise DataFormatError("cannot tell the LaMP task from the input; pass task='LaMP_N'",
                                  file=questions_path, line=line, field=f"[{i}].input")
        own, context = _LAMP_PROFILE.get(t, ("text", None))
        uid = str(q.get("user_id") or f"lamp-{qid}")
        history = []
        for j, item in enumerate(profile):
            where = f"[{i}].profile[{j}]"
            if not isinstance(item, dict):
                raise DataFormatError("expected an object", file=questions_path, line=line, field=where)
            text = _str_field(item, own, questions_path, line, where)
            pid = str(item.get("id", f"{qid}-p{j}"))
            retweet = None
            if context is not None and isinstance(item.get(context), str):
                retweet = Post(post_id=f"{pid}-src", user_id="", text=item[context], created_at="")
            history.append(Post(post_id=pid, user_id=uid, text=text, created_at=str(item.get("date") or ""),
                                retweet=retweet))
        if outputs_path is not None and qid not in golds:
            raise DataFormatError(f"question id {qid!r} has no gold output in {outputs_path}", file=questions_path,
                                  line=line, field=f"[{i}].id")
        seen.add(qid)
        prefix = LAMP_PREFIXES.get(t, "")
        news = inp[len(prefix):] if prefix and inp.startswith(prefix) else inp
        topic = Topic(topic_id=f"lamp-{qid}", hashtag="", news=news, category=t, time="")
        user = User(user_id=uid, screen_name=uid, history=history)
        response = Post(post_id=f"lamp-{qid}-out", user_id=uid, text=golds.get(qid, ""), created_at="")
        cases.append(Case(case_id=f"lamp-{qid}", topic=topic, user=user, response=response, sentiment=""))
    extra = sorted(set(golds) - seen)
    if extra:
        raise DataFormatError(f"{len(extra)} gold id(s) have no question (e.g. {extra[:3]}); the evaluator "
                              "requires the same id sets", file=outputs_path)
    return cases


# ============================================================================================================
# (e) SMPD (SMP Challenge), SMHP2018 and TPIC2017 (docs/formats.md#smpd-and-tpic2017)
# ============================================================================================================

SMP_COLUMNS: tuple[str, ...] = (
    "source", "split", "uid", "pid", "title", "category", "subcategory", "concept", "tags", "mediatype",
    "postdate", "latitude", "longitude", "geoaccuracy", "image", "user_avgview", "popularity",
)
"""Columns every popularity loader returns, in this order (dataset-specific extras follow, lower-cased):

``source`` ("SMPD" / "SMHP2018" / "TPIC2017"), ``split``, ``uid`` and ``pid`` (str; ``(uid, pid)`` is the post),
``title``, ``category`` / ``subcategory`` / ``concept`` (str, "" when the dataset has none), ``tags`` (list of
str, from the space-separated ``Alltags``), ``mediatype``, ``postdate`` (Unix seconds, UTC, nullable Int64 —
TPIC gives only a day and a 4-hour bucket, so its value is that bucket's start), ``latitude`` / ``longitude``
(float; Flickr's "0" = none stays 0), ``geoaccuracy`` (Int64), ``image`` (path or URL), ``user_avgview``
(TPIC's USER_META ``avgview``; the world's SMP posts use the same name), ``popularity`` (float label,
log-views; NaN where the split has no labels). Same names as the embedded world's SMP posts.
"""

_SMPD_FILES = {  # part → candidate file names (current naming first, then the older ``*_all_json`` naming)
    "category": ["{s}_category.json"],
    "text": ["{s}_text.json", "{s}_tags.json"],
    "temporal": ["{s}_temporalspatial_information.json", "{s}_temporalspatial.json"],
    "user": ["{s}_user_data.json", "{s}_userdata.json"],
    "additional": ["{s}_additional_information.json", "{s}_additional.json"],
    "image": ["{s}_img_filepath.txt", "{s}_img_path.txt", "{s}_img.txt"],
    "label": ["{s}_label.txt", "{s}_label.json"],  # .json: [3rd-party] builders expect records with a label key
}
_SMHP_COLUMNS = ("uid", "pid", "category", "subcategory", "concept", "pathalias", "ispublic", "mediastatus", "title",
                 "mediatype", "alltags", "postdate", "latitude", "geoaccuracy", "longitude")


def _find(folder: Path, names: Sequence[str], split: str) -> Path | None:
    for n in names:
        p = folder / n.format(s=split)
        if p.exists():
            return p
    return None


def _lines(path: Path) -> list[tuple[int, str]]:
    return [(i, s.strip()) for i, s in enumerate(read_text(path).split("\n"), 1) if s.strip()]


def _read_labels(path: Path) -> list[float]:
    out = []
    for line, s in _lines(path):
        token = s.split()[-1]  # one float per line; TPIC-style "pid uid logview" rows also work
        try:
            out.append(float(token))
        except ValueError:
            raise DataFormatError(f"expected a float label, got {s[:40]!r}", file=path, line=line) from None
    return out


def _read_label_records(path: Path) -> list[float]:
    out = []
    for line, rec in _records(path):
        keys = {k.lower(): k for k in rec}
        key = next((keys[k] for k in ("label", "popularity", "score", "logview") if k in keys), None)
        if key is None:
            raise DataFormatError("missing (expected one of label, popularity, score)", file=path, line=line,
                                  field="label")
        value = _num(rec[key], float, path, line, key)
        out.append(math.nan if value is None else value)
    return out


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for line, rec in iter_json_records(path):
        if not isinstance(rec, dict):
            raise DataFormatError(f"expected an object per post, got {type(rec).__name__}", file=path, line=line)
        out.append((line, rec))
    return out


def _norm_key(k: str) -> str:
    k = k.strip().lower()
    return {"tile": "title"}.get(k, k)


def _num(value: Any, kind: type, path: Path, line: int | None, name: str) -> Any:
    if value is None or (isinstance(value, str) and value.strip() in ("", "None", "null", "nan")):
        return None
    try:
        return kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        raise DataFormatError(f"expected a number, got {str(value)[:40]!r}", file=path, line=line,
                              field=name) from None


def _vector(value: Any) -> Any:
    """SMPD's ``user_description`` / ``location_description``: a comma-separated float string → list."""
    if isinstance(value, str) and "," in value:
        try:
            return [float(x) for x in value.split(",") if x.strip()]
        except ValueError:
            return value
    return value


def _finish(rows: list[dict[str, Any]], source: str, split: str) -> pd.DataFrame:
    import pandas as pd

    for r in rows:
        r["source"], r["split"] = source, split
        r.setdefault("tags", [])
        for c in SMP_COLUMNS:
            r.setdefault(c, "" if c in ("title", "category", "subcategory", "concept", "mediatype", "image") else None)
    df = pd.DataFrame(rows)
    extras = sorted(c for c in df.columns if c not in SMP_COLUMNS)
    df = df[list(SMP_COLUMNS) + extras]
    df["postdate"] = df["postdate"].astype("Int64")
    df["geoaccuracy"] = df["geoaccuracy"].astype("Int64")
    for c in ("latitude", "longitude", "user_avgview", "popularity"):
        df[c] = df[c].astype("float64")
    return df


def load_smpd(folder: PathLike, split: str = "train") -> pd.DataFrame:
    """SMPD (``{split}_category.json``, ``{split}_text.json``, … ``{split}_label.txt``; current or older naming)
    or SMHP2018 (``{split}_data.txt`` + ``{split}_label.txt``) → DataFrame with :data:`SMP_COLUMNS` first.

    The SMPD files are row-aligned (row i is the same post everywhere): the loader checks that every file
    has the same number of rows and, where a file carries ``Uid``/``Pid``, that they agree with the first
    one, naming file, line and field on a mismatch. A split without ``{split}_label.txt`` (test) gets NaN.
    """
    root = Path(folder)
    if (root / f"{split}_data.txt").exists():
        return _load_smhp2018(root, split)
    parts = {name: _find(root, names, split) for name, names in _SMPD_FILES.items()}
    if parts["category"] is None and parts["text"] is None:
        raise DataFormatError(f"no SMPD files for split {split!r} (expected {split}_category.json, "
                              f"{split}_text.json, … or SMHP2018's {split}_data.txt)", file=root)
    n_rows: int | None = None
    rows: list[dict[str, Any]] = []
    first_ids: list[tuple[str, str]] = []
    ref_file: Path | None = None

    def check_len(path: Path, n: int) -> None:
        nonlocal n_rows, rows
        if n_rows is None:
            n_rows = n
            rows = [{} for _ in range(n)]
        elif n != n_rows:
            raise DataFormatError(f"{n} rows, but {ref_file.name} has {n_rows}: the files must be row-aligned",
                                  file=path)

    for part in ("category", "text", "temporal", "additional", "user"):
        path = parts[part]
        if path is None:
            continue
        recs = _records(path)
        check_len(path, len(recs))
        ref_file = ref_file or path
        for i, (line, rec) in enumerate(recs):
            r = {_norm_key(k): v for k, v in rec.items()}
            if "uid" in r and "pid" in r:
                ids = (str(r["uid"]), str(r["pid"]))
                if len(first_ids) <= i:
                    first_ids.append(ids)
                elif ids != first_ids[i]:
                    bad = "uid" if ids[0] != first_ids[i][0] else "pid"
                    raise DataFormatError(f"{bad} {ids[0 if bad == 'uid' else 1]!r} does not match row {i + 1} of "
                                          f"{ref_file.name} ({first_ids[i][0 if bad == 'uid' else 1]!r}); the files "
                                          "are not row-aligned", file=path, line=line, field=bad.capitalize())
            out = rows[i]
            for k, v in r.items():
                if k in ("uid", "pid"):
                    out[k] = str(v)
                elif k == "alltags":
                    out["tags"] = str(v or "").split()
                elif k == "postdate":
                    out["postdate"] = _num(v, int, path, line, "Postdate")
                elif k in ("latitude", "longitude"):
                    out[k] = _num(v, float, path, line, k.capitalize())
                elif k == "geoaccuracy":
                    out[k] = _num(v, int, path, line, "Geoaccuracy")
                elif k in ("user_description", "location_description"):
                    out[k] = _vector(v)
                else:
                    out[k] = "" if v is None else v
    for part, col in (("image", "image"), ("label", "popularity")):
        path = parts[part]
        if path is None:
            continue
        if part == "image":
            values: list[Any] = [s.strip('"') for _, s in _lines(path)]
        else:
            values = _read_label_records(path) if path.suffix == ".json" else _read_labels(path)
        check_len(path, len(values))
        for r, v in zip(rows, values):
            r[col] = v
    return _finish(rows, "SMPD", split)


def _load_smhp2018(root: Path, split: str) -> pd.DataFrame:
    path = root / f"{split}_data.txt"
    rows = []
    for k, (line, s) in enumerate(_lines(path)):
        cells = next(csv.reader([s], delimiter=" ", quotechar='"', skipinitialspace=True))
        if k == 0 and [c.lower() for c in cells[:2]] == ["uid", "pid"]:
            continue  # a header row
        if len(cells) != len(_SMHP_COLUMNS):
            raise DataFormatError(f"{len(cells)} columns, expected {len(_SMHP_COLUMNS)} ({' '.join(_SMHP_COLUMNS)})",
                                  file=path, line=line)
        r: dict[str, Any] = dict(zip(_SMHP_COLUMNS, cells))
        r["tags"] = r.pop("alltags").split()
        r["postdate"] = _num(r["postdate"], int, path, line, "postdate")
        r["latitude"] = _num(r["latitude"], float, path, line, "latitude")
        r["longitude"] = _num(r["longitude"], float, path, line, "longitude")
        r["geoaccuracy"] = _num(r["geoaccuracy"], int, path, line, "geoaccuracy")
        r["_line"] = line
        rows.append(r)
    label_path = root / f"{split}_label.txt"
    if label_path.exists():
        labels = _read_labels(label_path)
        if len(labels) != len(rows):
            raise DataFormatError(f"{len(labels)} labels for {len(rows)} rows of {path.name}", file=label_path)
        for r, v in zip(rows, labels):
            r["popularity"] = v
    for r in rows:
        del r["_line"]
    return _finish(rows, "SMHP2018", split)


def _tsv(path: Path, default_header: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """TPIC's tab-separated files (whitespace accepted too), with or without their header row."""
    out = []
    header = list(default_header)
    for k, (line, s) in enumerate(_lines(path)):
        cells = [c.strip() for c in (s.split("\t") if "\t" in s else s.split())]
        if k == 0 and cells[0].lower() == "pid":
            header = [c.lower() for c in cells]
            continue
        if len(cells) != len(header):
            raise DataFormatError(f"{len(cells)} columns, expected {len(header)} ({' '.join(header)})", file=path,
                                  line=line)
        out.append((line, dict(zip(header, cells))))
    return out


def load_tpic2017(folder: PathLike, split: str = "train") -> pd.DataFrame:
    """TPIC2017 (``LABEL.txt`` ``pid uid logview``, ``USER_META.txt``, ``TIME_FLAG.txt``, optional
    ``PHOTO_URL.txt``) → DataFrame with :data:`SMP_COLUMNS` first, one row per ``LABEL.txt`` row, the other
    files joined on ``(pid, uid)``. ``avgview`` becomes ``user_avgview``; ``postdate`` is the day at the start
    of the ``hour_index`` bucket (0 = 2–6am … 5 = 10pm–2am), taken as UTC."""
    import pandas as pd  # noqa: F401 - make the dependency explicit before doing work

    root = Path(folder)
    label_path = root / "LABEL.txt"
    if not label_path.exists():
        raise DataFormatError("missing LABEL.txt (pid uid logview)", file=root)
    labels = _tsv(label_path, ("pid", "uid", "logview"))
    joined: dict[str, dict[tuple[str, str], tuple[int, dict[str, str]]]] = {}
    for name, header in (("USER_META.txt", ("pid", "uid", "commentcount", "haspeople", "titlelen", "deslen",
                                            "tagcount", "avgview", "groupcount", "avgmembercount")),
                         ("TIME_FLAG.txt", ("pid", "uid", "year", "month", "day", "hour_index")),
                         ("PHOTO_URL.txt", ("pid", "uid", "url"))):
        if (root / name).exists():
            joined[name] = {(r["pid"], r["uid"]): (ln, r) for ln, r in _tsv(root / name, header)}
    rows = []
    for line, lab in labels:
        key = (lab["pid"], lab["uid"])
        r: dict[str, Any] = {"pid": lab["pid"], "uid": lab["uid"],
                             "popularity": _num(lab.get("logview"), float, label_path, line, "logview")}
        meta = joined.get("USER_META.txt", {}).get(key)
        if meta is not None:
            mline, m = meta
            for k, v in m.items():
                if k not in ("pid", "uid"):
                    r["user_avgview" if k == "avgview" else k] = _num(v, float, root / "USER_META.txt", mline, k)
        tf = joined.get("TIME_FLAG.txt", {}).get(key)
        if tf is not None:
            tline, t = tf
            tpath = root / "TIME_FLAG.txt"
            y, mo, d, h = (_num(t.get(k), int, tpath, tline, k) for k in ("year", "month", "day", "hour_index"))
            r.update(year=y, month=mo, day=d, hour_index=h)
            if None not in (y, mo, d, h):
                try:
                    start = dt.datetime(y, mo, d, tzinfo=dt.timezone.utc) + dt.timedelta(hours=2 + 4 * h)
                except ValueError as err:
                    raise DataFormatError(f"not a date ({err})", file=tpath, line=tline, field="day") from None
                r["postdate"] = int(start.timestamp())
        url = joined.get("PHOTO_URL.txt", {}).get(key)
        if url is not None:
            r["image"] = url[1]["url"]
        rows.append(r)
    return _finish(rows, "TPIC2017", split)


# ============================================================================================================
# (f) PopALM (docs/formats.md#popalm)
# ============================================================================================================


@dataclass
class PopalmThread:
    """``SFT_RL/*.json`` line: a post and its replies, most-liked first (the replies carry no counts)."""

    weibo: str
    resp: list[str]
    line: int = 0


@dataclass
class PopalmPair:
    """``RM/*.json`` line: two replies to ``weibo`` with their like counts. PopALM's reward code always
    treats ``text_j`` as preferred although it has more likes in only ~57% of dev pairs; :attr:`preferred`
    goes by the likes instead."""

    weibo: str
    text_j: str
    text_k: str
    text_j_like: int
    text_k_like: int
    line: int = 0

    @property
    def preferred(self) -> str:
        """``"j"`` or ``"k"``: the reply with more likes (``"j"`` on a tie)."""
        return "j" if self.text_j_like >= self.text_k_like else "k"


def load_popalm_sft(path: PathLike, *, n_replies: int | None = None, encoding: str = "utf-8") -> list[PopalmThread]:
    """PopALM ``SFT_RL/{train,dev,test,train_ppo}.json`` (JSON Lines ``{"weibo", "resp": [...]}``).
    ``n_replies``: require exactly that many replies per post (the released files have 10)."""
    out = []
    for line, rec in iter_jsonl_numbered(path, required=("weibo", "resp"), types={"weibo": str, "resp": list},
                                         encoding=encoding):
        resp = rec["resp"]
        for j, r in enumerate(resp):
            if not isinstance(r, str):
                raise DataFormatError(f"expected str, got {type(r).__name__}", file=path, line=line,
                                      field=f"resp[{j}]")
        if not resp or (n_replies is not None and len(resp) != n_replies):
            want = "at least 1" if n_replies is None else str(n_replies)
            raise DataFormatError(f"{len(resp)} replies, expected {want}", file=path, line=line, field="resp")
        out.append(PopalmThread(rec["weibo"], list(resp), line))
    return out


def load_popalm_pairs(path: PathLike, *, encoding: str = "utf-8") -> list[PopalmPair]:
    """PopALM ``RM/{train,dev,test}.json`` (JSON Lines of reward pairs with like counts)."""
    names = ("weibo", "text_j", "text_k", "text_j_like", "text_k_like")
    types = {"weibo": str, "text_j": str, "text_k": str, "text_j_like": int, "text_k_like": int}
    out = []
    for line, rec in iter_jsonl_numbered(path, required=names, types=types, encoding=encoding):
        for k in ("text_j_like", "text_k_like"):
            if rec[k] < 0:
                raise DataFormatError(f"negative count {rec[k]}", file=path, line=line, field=k)
        out.append(PopalmPair(*(rec[n] for n in names), line=line))
    return out


def popalm_to_schema(threads: Iterable[PopalmThread]) -> tuple[list[Topic], list[Response]]:
    """Threads → topics (the post as ``news``; hashtag = its first ``#…#``, else "") and unlabelled
    responses, one per reply, in like order (``post_id`` ``"{topic_id}-r{rank}"``). PopALM has no user ids
    or counts, so ``user_id`` is empty and ``likes`` 0; the rank is in the id."""
    topics, responses = [], []
    for th in threads:
        tags = extract_hashtags(th.weibo)
        tid = _stable_id("pa", th.weibo)
        topics.append(Topic(topic_id=tid, hashtag=tags[0] if tags else "", news=th.weibo, category="", time=""))
        for rank, text in enumerate(th.resp):
            post = Post(post_id=f"{tid}-r{rank}", user_id="", text=text, created_at="", hashtags=extract_hashtags(text))
            responses.append(Response(topic_id=tid, post=post, sentiment=""))
    return topics, responses
