"""Schema validation: one dict against the shared data model, with errors that name file, line and field.

``validate_*`` check one dict against its record dataclass (``data.schema``) and return the dataclass;
``load_*`` do that for a whole JSON Lines file; :data:`VALIDATORS` / :func:`guess_kind` pick the validator by
record kind. Which fields a record has, their types, which may be ``None`` and which are required (no default)
is read from the dataclasses (:func:`spec_for`), not restated here; what a type cannot say (non-empty ids, ISO
times, non-negative counts, text length, known labels) is checked by hand below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import is_dataclass
from functools import cache
from typing import Any

from .checks import is_type, show_value, type_names
from .errors import DataFormatError, PathLike, TypeSpec, join_field
from .read import iter_jsonl_numbered
from .schema import PERSONA_FIELDS, Case, Persona, Post, RecordParts, Response, Topic, User, record_fields

__all__ = [
    "MAX_FIELD_CHARS",
    "spec_for",
    "validate_topic",
    "validate_post",
    "validate_persona",
    "validate_user",
    "validate_response",
    "validate_case",
    "VALIDATORS",
    "guess_kind",
    "load_topics",
    "load_posts",
    "load_users",
    "load_responses",
    "load_cases",
]

_NONE = type(None)

MAX_FIELD_CHARS = 20_000
"""Longest text field a schema record may hold. A Weibo post is at most a few thousand characters; a field
far beyond that is a broken export (a whole file in one cell), and word segmentation of it is super-linear
(one 1M-character field made a 10-case build take minutes), so it is refused with a clear error instead."""


@cache
def spec_for(cls: type) -> dict[str, tuple[TypeSpec, bool]]:
    """``{field: (accepted JSON types, required)}`` for a record dataclass, in field order, from its annotations.

    ``str``/``int``/``float``/``list`` stay themselves, a nested record is a ``dict``, ``X | None`` also accepts
    ``None``; a field without a default is required. (Read-only: the dict is cached.)
    """
    out: dict[str, tuple[TypeSpec, bool]] = {}
    for f in record_fields(cls):
        base = dict if is_dataclass(f.type) else f.type
        out[f.name] = ((base, _NONE) if f.optional else base, f.required)
    return out


class _Where:
    """File and line threaded through nested validators, so a deep error still names both."""

    __slots__ = ("file", "line")

    def __init__(self, file: PathLike | None, line: int | None) -> None:
        self.file, self.line = file, line

    def error(self, problem: str, field: str) -> DataFormatError:
        return DataFormatError(problem, file=self.file, line=self.line, field=field)


def _check_spec(
    record: Any, spec: Mapping[str, tuple[TypeSpec, bool]], path: str, where: _Where, what: str
) -> None:
    if not isinstance(record, dict):
        raise where.error(
            f"expected a {what} object, got {type(record).__name__} ({show_value(record)})", path or what
        )
    for name, (t, required) in spec.items():
        if name not in record:
            if required:
                raise where.error("missing", join_field(path, name))
            continue
        value = record[name]
        if not is_type(value, t):
            raise where.error(
                f"expected {type_names(t)}, got {type(value).__name__} ({show_value(value)})",
                join_field(path, name),
            )
        if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
            raise where.error(
                f"{len(value)} characters, more than the limit of {MAX_FIELD_CHARS} "
                "(io.MAX_FIELD_CHARS): a broken export?",
                join_field(path, name),
            )


def _check_time(value: str, field: str, where: _Where) -> None:
    """An ISO 8601 time (``2024-03-01T12:00:00``) or empty (unknown, as in the official Alpaca files)."""
    if not value:
        return
    import datetime as dt

    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        raise where.error(
            f"not an ISO 8601 time ({show_value(value)}; expected e.g. '2024-03-01T12:00:00')", field
        ) from None


def _nonempty(record: dict[str, Any], names: Sequence[str], path: str, where: _Where) -> None:
    for name in names:
        if not record[name].strip():
            raise where.error("empty", join_field(path, name))


def _labels_check(record: dict[str, Any], labels: Sequence[str] | None, path: str, where: _Where) -> None:
    if labels is not None and record["sentiment"] not in labels:
        raise where.error(
            f"unknown label {record['sentiment']!r}; expected one of {list(labels)}",
            join_field(path, "sentiment"),
        )


def validate_topic(
    record: Any, *, file: PathLike | None = None, line: int | None = None, path: str = ""
) -> Topic:
    """A topic dict → :class:`Topic`; ``topic_id`` must be non-empty (responses join on it)."""
    where = _Where(file, line)
    _check_spec(record, spec_for(Topic), path, where, "topic")
    _nonempty(record, ["topic_id"], path, where)
    _check_time(record["time"], join_field(path, "time"), where)
    return Topic.from_dict(record)


def _validate_post(record: Any, path: str, where: _Where) -> Post:
    _check_spec(record, spec_for(Post), path, where, "post")
    _nonempty(record, ["post_id"], path, where)
    _check_time(record["created_at"], join_field(path, "created_at"), where)
    for i, tag in enumerate(record.get("hashtags") or []):
        if not isinstance(tag, str):
            raise where.error(
                f"expected str, got {type(tag).__name__} ({show_value(tag)})",
                join_field(join_field(path, "hashtags"), i),
            )
    for name in ("likes", "reposts", "comments"):
        if record.get(name, 0) < 0:
            raise where.error(f"negative count {record[name]}", join_field(path, name))
    for i, x in enumerate(record.get("image_features") or []):
        if not is_type(x, float):
            raise where.error(
                f"expected float, got {type(x).__name__} ({show_value(x)})",
                join_field(join_field(path, "image_features"), i),
            )
    post = Post.from_dict(record)
    if record.get("retweet") is not None:
        post.retweet = _validate_post(record["retweet"], join_field(path, "retweet"), where)
    return post


def validate_post(
    record: Any, *, file: PathLike | None = None, line: int | None = None, path: str = ""
) -> Post:
    """A post dict → :class:`Post` (a nested ``retweet`` is validated too)."""
    return _validate_post(record, path, _Where(file, line))


def _validate_persona(record: Any, path: str, where: _Where) -> Persona:
    _check_spec(record, spec_for(Persona), path, where, "persona")
    return Persona.from_dict(record)


def validate_persona(
    record: Any, *, file: PathLike | None = None, line: int | None = None, path: str = ""
) -> Persona:
    """A persona dict → :class:`Persona`: all five items, as strings."""
    return _validate_persona(record, path, _Where(file, line))


def _validate_user(record: Any, path: str, where: _Where, allow_empty_history: bool) -> User:
    _check_spec(record, spec_for(User), path, where, "user")
    _nonempty(record, ["user_id"], path, where)
    if not record["history"] and not allow_empty_history:
        raise where.error(
            "empty history (a user needs at least one past post to be modelled; "
            "drop the user or pass allow_empty_history=True)",
            join_field(path, "history"),
        )
    if record.get("followers", 0) < 0:
        raise where.error(f"negative count {record['followers']}", join_field(path, "followers"))
    hpath = join_field(path, "history")
    history = [_validate_post(p, join_field(hpath, i), where) for i, p in enumerate(record["history"])]
    persona = None
    if record.get("persona") is not None:
        persona = _validate_persona(record["persona"], join_field(path, "persona"), where)
    user = User.from_dict({**record, "history": [], "persona": None})
    user.history, user.persona = history, persona
    return user


def validate_user(
    record: Any,
    *,
    file: PathLike | None = None,
    line: int | None = None,
    path: str = "",
    allow_empty_history: bool = False,
) -> User:
    """A user dict → :class:`User`. ``history`` must be a non-empty list of posts unless
    ``allow_empty_history`` (e.g. SocialAlign's ``without_history`` variant)."""
    return _validate_user(record, path, _Where(file, line), allow_empty_history)


def validate_response(
    record: Any,
    *,
    file: PathLike | None = None,
    line: int | None = None,
    path: str = "",
    labels: Sequence[str] | None = None,
) -> Response:
    """A response dict → :class:`Response`; with ``labels``, the sentiment must be one of them."""
    where = _Where(file, line)
    _check_spec(record, spec_for(Response), path, where, "response")
    _nonempty(record, ["topic_id"], path, where)
    _labels_check(record, labels, path, where)
    post = _validate_post(record["post"], join_field(path, "post"), where)
    return Response(
        topic_id=record["topic_id"],
        post=post,
        sentiment=record["sentiment"],
        split=record.get("split", "train"),
    )


def validate_case(
    record: Any,
    *,
    file: PathLike | None = None,
    line: int | None = None,
    path: str = "",
    labels: Sequence[str] | None = None,
    allow_empty_history: bool = False,
) -> Case:
    """A case dict → :class:`Case` (topic, user with history, response post, label); errors name the nested
    field, e.g. ``user.history[2].text``. An empty ``sentiment`` means "not labelled yet" and passes unless
    ``labels`` is given."""
    where = _Where(file, line)
    _check_spec(record, spec_for(Case), path, where, "case")
    _nonempty(record, ["case_id"], path, where)
    _labels_check(record, labels, path, where)
    topic = validate_topic(record["topic"], file=file, line=line, path=join_field(path, "topic"))
    user = _validate_user(record["user"], join_field(path, "user"), where, allow_empty_history)
    response = _validate_post(record["response"], join_field(path, "response"), where)
    if not response.text.strip() and response.retweet is None:
        raise where.error(
            "empty (the reply a case teaches or predicts needs text)", join_field(path, "response.text")
        )
    parts = record.get("record_parts")
    if parts is not None:
        _check_spec(parts, spec_for(RecordParts), join_field(path, "record_parts"), where, "record_parts")
        for i, item in enumerate(parts["history"]):
            if not isinstance(item, str):
                raise where.error(
                    f"expected str, got {type(item).__name__}", join_field(path, f"record_parts.history[{i}]")
                )
        parts = RecordParts.from_dict(parts)
    return Case(
        case_id=record["case_id"],
        topic=topic,
        user=user,
        response=response,
        sentiment=record["sentiment"],
        split=record.get("split", "train"),
        record_parts=parts,
    )


VALIDATORS: dict[str, Callable[..., Any]] = {
    "topic": validate_topic,
    "post": validate_post,
    "persona": validate_persona,
    "user": validate_user,
    "response": validate_response,
    "case": validate_case,
}


def guess_kind(record: Mapping[str, Any]) -> str | None:
    """Which schema record a dict looks like, from its identifying keys (``None``: not a schema record)."""
    if "case_id" in record:
        return "case"
    if "topic_id" in record and "post" in record:
        return "response"
    if "user_id" in record and "history" in record:
        return "user"
    if "post_id" in record:
        return "post"
    if "topic_id" in record and "hashtag" in record:
        return "topic"
    if all(name in record for name in PERSONA_FIELDS):
        return "persona"
    return None


def _load(path: PathLike, kind: str, encoding: str, **kw: Any) -> list[Any]:
    validator = VALIDATORS[kind]
    return [
        validator(rec, file=path, line=n, **kw) for n, rec in iter_jsonl_numbered(path, encoding=encoding)
    ]


def load_topics(path: PathLike, *, encoding: str = "utf-8") -> list[Topic]:
    """``topics.jsonl`` → validated :class:`Topic` list."""
    return _load(path, "topic", encoding)


def load_posts(path: PathLike, *, encoding: str = "utf-8") -> list[Post]:
    """A JSON Lines file of posts → validated :class:`Post` list."""
    return _load(path, "post", encoding)


def load_users(path: PathLike, *, encoding: str = "utf-8", allow_empty_history: bool = False) -> list[User]:
    """``users.jsonl`` → validated :class:`User` list (each with a non-empty history by default)."""
    return _load(path, "user", encoding, allow_empty_history=allow_empty_history)


def load_responses(
    path: PathLike, *, encoding: str = "utf-8", labels: Sequence[str] | None = None
) -> list[Response]:
    """``responses.jsonl`` → validated :class:`Response` list."""
    return _load(path, "response", encoding, labels=labels)


def load_cases(
    path: PathLike,
    *,
    encoding: str = "utf-8",
    labels: Sequence[str] | None = None,
    allow_empty_history: bool = False,
    unique_ids: bool = False,
) -> list[Case]:
    """A JSON Lines file of cases → validated :class:`Case` list. ``unique_ids``: a ``case_id`` seen on an
    earlier line is an error (records, replies and metrics are keyed by it)."""
    cases = _load(path, "case", encoding, labels=labels, allow_empty_history=allow_empty_history)
    if unique_ids:
        seen: dict[str, int] = {}
        for n, (line, _) in enumerate(iter_jsonl_numbered(path, encoding=encoding)):
            first = seen.setdefault(cases[n].case_id, line)
            if first != line:
                raise DataFormatError(
                    f"duplicate {cases[n].case_id!r} (first on line {first})",
                    file=path,
                    line=line,
                    field="case_id",
                )
    return cases
