"""Field checks for plain JSON records: required field paths and types, with errors naming file, line, field.

Used by the readers (``read_jsonl(required=..., types=...)``) and by the schema validators (``data.validate``);
a module of its own so that neither has to import the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import DataFormatError, PathLike, TypeSpec, join_field

__all__ = ["check_fields", "is_type", "type_names", "show_value"]

_MISSING = object()


def type_names(types: TypeSpec) -> str:
    """``"str or null"`` for ``(str, NoneType)``."""
    ts = types if isinstance(types, tuple) else (types,)
    return " or ".join("null" if t is type(None) else t.__name__ for t in ts)


def is_type(value: Any, types: TypeSpec) -> bool:
    """``isinstance`` as JSON data needs it: ``bool`` is not an ``int``; an ``int`` is a ``float``."""
    ts = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):
        return bool in ts
    if isinstance(value, int) and float in ts:
        return True
    return isinstance(value, ts)


def show_value(value: Any) -> str:
    """``repr(value)``, cut to 40 characters for an error message."""
    s = repr(value)
    return s if len(s) <= 40 else s[:37] + "..."


def _get(record: Any, path: str) -> Any:
    cur = record
    for key in path.split("."):
        if not isinstance(cur, dict) or key not in cur:
            return _MISSING
        cur = cur[key]
    return cur


def check_fields(
    record: Mapping[str, Any],
    *,
    required: Sequence[str] = (),
    types: Mapping[str, TypeSpec] | None = None,
    file: PathLike | None = None,
    line: int | None = None,
    prefix: str = "",
) -> None:
    """Raise :class:`DataFormatError` if a ``required`` field path is missing or a field in ``types`` has
    the wrong type (absent fields are only checked by ``required``)."""
    for name in required:
        if _get(record, name) is _MISSING:
            raise DataFormatError("missing", file=file, line=line, field=join_field(prefix, name))
    for name, t in (types or {}).items():
        value = _get(record, name)
        if value is not _MISSING and not is_type(value, t):
            raise DataFormatError(
                f"expected {type_names(t)}, got {type(value).__name__} ({show_value(value)})",
                file=file,
                line=line,
                field=join_field(prefix, name),
            )
