"""The persona text format: the five numbered items a persona prompt asks for, read back into a :class:`Persona`.

One parser for every place a persona arrives as text: a chat model's answer (``persona``'s backends) and the
persona block of an official SocialAlign record (``data.loaders``). It imports only the schema, so
the data loaders can use it without the persona backends (or the world's lexicon) behind them.
"""

from __future__ import annotations

import re

from .schema import PERSONA_FIELDS, Persona

__all__ = ["MAX_ITEM_CHARS", "PersonaError", "PersonaParseError", "parse_persona", "parse_persona_text"]

MAX_ITEM_CHARS = 20
"""The paper's limit per persona item ("每项不超过20字")."""


class PersonaError(Exception):
    """Base class: anything that stops one user's persona from being extracted."""


class PersonaParseError(PersonaError):
    """The model answered, but not with five recognisable items. ``raw`` keeps the answer for the record."""

    def __init__(self, message: str, raw: str = "") -> None:
        super().__init__(message)
        self.raw = raw


_FIELD_LABELS: dict[str, tuple[str, ...]] = {
    # longest first inside each tuple; the official example itself says 情感倾向 instead of 情感基调
    "interests": ("兴趣话题", "兴趣爱好", "关注话题", "兴趣", "话题"),
    "language_style": ("语言风格", "表达风格", "语言", "风格"),
    "emotional_tone": ("情感基调", "情感倾向", "情绪基调", "情感", "情绪", "基调"),
    "personality": ("性格特征", "性格特点", "性格", "个性"),
    "values": ("价值观念", "价值观", "价值取向", "价值"),
}
_ITEM_START = re.compile(r"(?:^|(?<=\s))[（(]?\s*([1-5１-５])\s*[\.、．)）:：]")
_LABEL_RE = re.compile(
    r"^\s*("
    + "|".join(sorted({x for v in _FIELD_LABELS.values() for x in v}, key=len, reverse=True))
    + r")\s*[:：]?\s*"
)
_FULLWIDTH_DIGITS = str.maketrans("１２３４５", "12345")
_EDGES = " \t:：;；。."
_QUOTE_PAIRS = {'"': '"', "'": "'", "“": "”", "「": "」"}


def _item_value(body: str) -> str:
    """An item's text without the punctuation around it, and without quotes that wrap *all* of it (``“科技”``);
    quotes inside stay whole, so ``常说“绝了”`` keeps its closing quote."""
    value = body.strip(_EDGES)
    close = _QUOTE_PAIRS.get(value[:1])
    if (
        close
        and len(value) >= 2
        and value.endswith(close)
        and value[0] not in value[1:-1]
        and close not in value[1:-1]
    ):
        value = value[1:-1].strip(_EDGES)
    return value


def parse_persona(text: str, max_chars: int | None = MAX_ITEM_CHARS) -> tuple[Persona, list[str]]:
    """Parse a model's answer into a :class:`Persona`; also return the names of items cut to ``max_chars``.

    Robust to what chat models actually write: Markdown bold, full-width digits and colons, "1、" / "(1)"
    numbering, all items on one line, unnumbered "标签：…" lines, synonyms of the labels (情感倾向 for 情感基调),
    a preamble line. An item is assigned by its label when it has one and by its number otherwise. ``max_chars=None``
    keeps items whole (a dataset's persona as it was written). Raises
    :class:`PersonaParseError` (with the raw text) unless all five items are found and non-empty.
    """
    clean = re.sub(r"[*#`>]+", " ", text or "").translate(_FULLWIDTH_DIGITS)
    starts = list(_ITEM_START.finditer(clean))
    found: dict[str, str] = {}
    for k, m in enumerate(starts):
        body = clean[m.end() : starts[k + 1].start() if k + 1 < len(starts) else len(clean)]
        body = body.strip().split("\n\n")[0].replace("\n", " ").strip()
        name = PERSONA_FIELDS[int(m.group(1)) - 1]
        label = _LABEL_RE.match(body)
        if label:
            name = next(f for f, labels in _FIELD_LABELS.items() if label.group(1) in labels)
            body = body[label.end() :]
        value = _item_value(body)
        if value and name not in found:
            found[name] = value
    for (
        line
    ) in clean.splitlines():  # unnumbered "兴趣话题：…" / "- 兴趣话题：…" lines fill what is still missing
        label = _LABEL_RE.match(line.strip(" \t-•·"))
        if label:
            name = next(f for f, labels in _FIELD_LABELS.items() if label.group(1) in labels)
            value = _item_value(line.strip(" \t-•·")[label.end() :])
            if value and name not in found:
                found[name] = value
    missing = [f for f in PERSONA_FIELDS if f not in found]
    if missing:
        raise PersonaParseError(
            f"persona answer lacks item(s) {missing}: found {sorted(found)}", raw=text or ""
        )
    truncated = [f for f in PERSONA_FIELDS if max_chars is not None and len(found[f]) > max_chars]
    return Persona(**{f: found[f][:max_chars] for f in PERSONA_FIELDS}), truncated


def parse_persona_text(text: str) -> Persona | None:
    """A dataset's persona block (``1. 兴趣话题：…``) → :class:`Persona` with every item whole, or ``None`` when
    any item is missing (free-form text stays text for the caller). :func:`parse_persona` with no length cap."""
    try:
        return parse_persona(text, max_chars=None)[0]
    except PersonaParseError:
        return None
