"""The one data model every notebook shares (docs/design.md#data-model).

Records are plain dataclasses that serialise to JSON-ready dicts (``to_dict``) and back
(``from_dict``). Stored files are JSON Lines with one record per line, so a reader can open them with
any tool; ``socialalign_lib.data.validate`` checks them on load and names file, line and field on error.

The dataclasses are the one source of each record's fields: :func:`record_fields` reads them (names, types,
which may be None, which have no default), and the validation specs (``data.validate``) and the
``datasets.Features`` (``data.hf``) are derived from it, so a field added here is validated and typed there.

Why dataclasses and not pydantic: the records are simple, the validation we need (required fields,
types, non-empty history) is a few lines in ``data.validate``, and the dependency list stays short.
"""

from __future__ import annotations

import types
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from functools import cache
from typing import Any, Union, get_args, get_origin, get_type_hints

SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")
"""Default label set. The paper's persona says 积极/消极/中性; keep code generic over any tuple of labels."""

PERSONA_FIELDS: tuple[str, ...] = ("interests", "language_style", "emotional_tone", "personality", "values")
PERSONA_FIELDS_ZH: dict[str, str] = {
    "interests": "兴趣话题",
    "language_style": "语言风格",
    "emotional_tone": "情感基调",
    "personality": "性格特征",
    "values": "价值观",
}


def _from_dict(cls, data: dict[str, Any]):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Topic:
    """A news event: the thing the public responds to."""

    topic_id: str
    hashtag: str  # without the surrounding '#'
    news: str
    category: str
    time: str  # ISO 8601, "2024-03-01T12:00:00"

    to_dict = asdict

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Topic:
        return _from_dict(cls, data)


@dataclass
class Post:
    """One Weibo post (a history post, a response, or the original inside a repost)."""

    post_id: str
    user_id: str
    text: str
    created_at: str
    hashtags: list[str] = field(default_factory=list)
    retweet: Post | None = None
    likes: int = 0
    reposts: int = 0
    comments: int = 0
    screen_name: str | None = None
    image_caption: str | None = None
    image_features: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["retweet"] = self.retweet.to_dict() if self.retweet is not None else None
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Post:
        post = _from_dict(cls, data)
        if isinstance(post.retweet, dict):
            post.retweet = Post.from_dict(post.retweet)
        return post

    @property
    def full_text(self) -> str:
        """Text as the paper shows a repost: "该用户转发了微博: X, 并评论说: Y"."""
        if self.retweet is None:
            return self.text
        return f"该用户转发了微博: {self.retweet.text}, 并评论说: {self.text}"


@dataclass
class Persona:
    """The paper's five-item persona (each item ≤ 20 characters), plus the free-text rendering."""

    interests: str
    language_style: str
    emotional_tone: str
    personality: str
    values: str

    to_dict = asdict

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Persona:
        return _from_dict(cls, data)

    def render(self) -> str:
        """The numbered Chinese form the official persona prompt asks GPT-4 for."""
        return "\n".join(
            f"{i}. {PERSONA_FIELDS_ZH[name]}: {getattr(self, name)}"
            for i, name in enumerate(PERSONA_FIELDS, 1)
        )


@dataclass
class User:
    user_id: str
    screen_name: str
    history: list[Post]
    gender: str | None = None
    location: str | None = None
    description: str | None = None
    followers: int = 0
    persona: Persona | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["history"] = [p.to_dict() for p in self.history]
        d["persona"] = self.persona.to_dict() if self.persona is not None else None
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> User:
        user = _from_dict(cls, data)
        user.history = [p if isinstance(p, Post) else Post.from_dict(p) for p in user.history]
        if isinstance(user.persona, dict):
            user.persona = Persona.from_dict(user.persona)
        return user


@dataclass
class Response:
    """A user's real reply to a topic, with its sentiment label and split."""

    topic_id: str
    post: Post
    sentiment: str
    split: str = "train"

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic_id": self.topic_id,
            "post": self.post.to_dict(),
            "sentiment": self.sentiment,
            "split": self.split,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Response:
        return cls(
            topic_id=data["topic_id"],
            post=Post.from_dict(data["post"]),
            sentiment=data["sentiment"],
            split=data.get("split", "train"),
        )


@dataclass
class RecordParts:
    """The parts of an already-rendered (official) instruction record, kept verbatim.

    An official record was rendered once, for one (user, topic) pair: its five history posts were retrieved *for
    that news* and its persona was written from them. Kept on the :class:`Case`, these parts let
    ``records.build_records`` render the record again without re-retrieving, re-ranking or re-wording anything, so
    the instruction comes back identical (and the other variants are the official templates filled with the same
    parts). ``history`` holds the rendered items ("你转发了微博: X, 并评论说: Y" for a repost); ``persona_text`` the
    persona block as written; ``variant`` and ``instruction`` the record's own.
    """

    user_name: str
    history: list[str]
    persona_text: str | None
    news: str
    hashtag: str
    variant: str
    instruction: str

    to_dict = asdict

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecordParts:
        return _from_dict(cls, data)


@dataclass
class Case:
    """One training/test example: (topic, user with history + persona, real response, its label).

    ``record_parts``: set for a case read from an already-rendered record (the official alpaca JSON); records are
    then rendered from these parts verbatim (see :class:`RecordParts`).
    """

    case_id: str
    topic: Topic
    user: User
    response: Post
    sentiment: str
    split: str = "train"
    record_parts: RecordParts | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "case_id": self.case_id,
            "topic": self.topic.to_dict(),
            "user": self.user.to_dict(),
            "response": self.response.to_dict(),
            "sentiment": self.sentiment,
            "split": self.split,
        }
        if self.record_parts is not None:
            out["record_parts"] = self.record_parts.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        parts = data.get("record_parts")
        return cls(
            case_id=data["case_id"],
            topic=Topic.from_dict(data["topic"]),
            user=User.from_dict(data["user"]),
            response=Post.from_dict(data["response"]),
            sentiment=data["sentiment"],
            split=data.get("split", "train"),
            record_parts=RecordParts.from_dict(parts) if parts else None,
        )


RECORD_TYPES: dict[str, type] = {
    "topic": Topic,
    "post": Post,
    "persona": Persona,
    "user": User,
    "response": Response,
    "case": Case,
}
"""The stored record kinds by name (``data.validate.VALIDATORS``, ``data.hf.features_for``)."""


@dataclass(frozen=True)
class FieldInfo:
    """One dataclass field as the validators and the ``datasets`` features need it.

    ``type`` is ``str``, ``int``, ``float``, ``list`` or a record dataclass; ``item`` the element type of a
    list; ``optional``: the annotation allows ``None``; ``required``: no default, so a stored record must
    carry the field.
    """

    name: str
    type: type
    item: type | None
    optional: bool
    required: bool


_PLAIN = (str, int, float, list)


@cache
def record_fields(cls: type) -> tuple[FieldInfo, ...]:
    """The fields of a record dataclass, in declaration order, read from its annotations.

    Raises ``TypeError`` for an annotation the derived specs cannot express (a union of two real types, a
    dict): a new field must be typed as one of ``str``/``int``/``float``/``list[...]``/a record, or ``… | None``.
    """
    hints = get_type_hints(cls)
    out = []
    for f in fields(cls):
        hint, optional = hints[f.name], False
        if get_origin(hint) in (Union, types.UnionType):
            args = get_args(hint)
            real = [a for a in args if a is not type(None)]
            if len(real) != 1:
                raise TypeError(f"{cls.__name__}.{f.name}: {hint} is not one type or one type | None")
            hint, optional = real[0], len(real) < len(args)
        item = None
        if get_origin(hint) is list:
            (item,) = get_args(hint) or (Any,)
            hint = list
        if hint not in _PLAIN and not is_dataclass(hint):
            raise TypeError(f"{cls.__name__}.{f.name}: {hint} is not str, int, float, list[...] or a record")
        required = f.default is MISSING and f.default_factory is MISSING
        out.append(FieldInfo(f.name, hint, item, optional, required))
    return tuple(out)
