"""Field helpers shared by the loaders: a string field of a raw record, or an error naming file, line, field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import DataFormatError, PathLike


def _str_field(
    rec: Mapping[str, Any], key: str, path: PathLike, line: int | None, where: str = "", required: bool = True
) -> str | None:
    name = f"{where}.{key}" if where else key
    if key not in rec or rec[key] is None:
        if required:
            raise DataFormatError("missing", file=path, line=line, field=name)
        return None
    value = rec[key]
    if not isinstance(value, str):
        raise DataFormatError(
            f"expected str, got {type(value).__name__} ({str(value)[:40]!r})",
            file=path,
            line=line,
            field=name,
        )
    return value
