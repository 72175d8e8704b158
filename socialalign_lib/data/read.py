"""Readers that say exactly what is wrong: JSON Lines, JSON (arrays too), text, CSV rows and Parquet.

:func:`read_jsonl` / :func:`iter_jsonl` decode line by line and raise :class:`DataFormatError`, whose message
names file, line and field (``data/x.jsonl line 17, field 'user.history[2].text': missing``). Text is decoded by
the one encoding policy (``data.encoding``): a file in GB18030 read as UTF-8 gets a hint to pass
``encoding="gb18030"``. A torn last line (an interrupted append) is an error unless the caller asks to drop or
repair it (``data.append``). Schema records are validated on top of these by ``data.validate``.
"""

from __future__ import annotations

import codecs
import csv
import io as _stdio
import json
import logging
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .append import repair_jsonl_tail
from .checks import check_fields
from .encoding import UTF8_NAMES, decode_error, decode_text
from .errors import DataFormatError, PathLike, TypeSpec

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

__all__ = [
    "read_text",
    "read_json",
    "iter_json_records",
    "iter_jsonl_numbered",
    "iter_jsonl",
    "read_jsonl",
    "read_parquet",
    "iter_csv_rows",
]


def read_text(path: PathLike, *, encoding: str = "utf-8") -> str:
    """A whole text file, with a decoding error that names line and byte (and suggests the likely encoding).

    A UTF-8 byte-order mark is dropped (Excel and the weibo crawler write ``utf-8-sig``). ``encoding="auto"``
    takes the first *strict* decode of UTF-8 (BOM or not), then GB18030 (``data.encoding.decode_bytes``), so neither
    guess can silently produce mojibake. A file read as GB18030 that is valid UTF-8 with non-ASCII text is
    refused: GB18030 decodes most UTF-8 Chinese without an error, into mojibake, while real GB18030 Chinese
    text is practically never valid UTF-8.
    """
    p = Path(path)
    return decode_text(p.read_bytes(), p, encoding)


def read_json(path: PathLike, *, encoding: str = "utf-8") -> Any:
    """One JSON document; a syntax error names the line and column."""
    p = Path(path)
    text = read_text(p, encoding=encoding)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(
            f"truncated or invalid JSON ({err.msg} at column {err.colno})", file=p, line=err.lineno
        ) from None


def iter_json_records(path: PathLike, *, encoding: str = "utf-8") -> Iterator[tuple[int, Any]]:
    """``(line, record)`` from a JSON array file (``[{...}, {...}]``, the official SocialAlign and LaMP form)
    or from JSON Lines, whichever the file holds; ``line`` is where the record starts, for error messages.

    The array is walked with ``JSONDecoder.raw_decode``, one element at a time, so a syntax error names the
    element's line instead of "char 48213977".
    """
    p = Path(path)
    text = read_text(p, encoding=encoding)
    start = len(text) - len(text.lstrip())
    if not text.startswith("[", start):
        first = text[start:].split("\n", 1)[0]
        try:
            json.loads(first)
        except json.JSONDecodeError:  # a pretty-printed document? say so instead of "line 1: invalid JSON"
            try:
                doc = json.loads(text)
            except json.JSONDecodeError:
                doc = None
            if doc is not None:
                raise DataFormatError(
                    f"expected a JSON array of records (or JSON Lines), got one JSON {type(doc).__name__}",
                    file=p,
                ) from None
        yield from iter_jsonl_numbered(p, encoding=encoding)
        return
    dec = json.JSONDecoder()
    ws = re.compile(r"\s*")
    i, line, counted = start + 1, 1, 0

    def line_at(pos: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    i = ws.match(text, i).end()
    if text.startswith("]", i):
        return
    while True:
        try:
            obj, end = dec.raw_decode(text, i)
        except json.JSONDecodeError as err:
            raise DataFormatError(
                f"truncated or invalid JSON ({err.msg} at column {err.colno})", file=p, line=err.lineno
            ) from None
        yield line_at(i), obj
        i = ws.match(text, end).end()
        if text.startswith(",", i):
            i = ws.match(text, i + 1).end()
        elif text.startswith("]", i):
            return
        else:
            what = "the file ends" if i >= len(text) else f"found {text[i : i + 10]!r}"
            raise DataFormatError(
                f"truncated or invalid JSON array (expected ',' or ']'; {what})", file=p, line=line_at(i)
            )


def iter_jsonl_numbered(
    path: PathLike,
    *,
    required: Sequence[str] = (),
    types: Mapping[str, TypeSpec] | None = None,
    encoding: str = "utf-8",
    torn_tail: str = "error",
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for each non-blank line; see :func:`read_jsonl` for the arguments.

    Lines are split on ``\\n`` bytes only: ``str.splitlines`` would also split inside records at U+2028,
    U+0085 or \\x1c, which JSON leaves unescaped in strings.
    """
    if torn_tail not in ("error", "drop", "repair"):
        raise ValueError(f"torn_tail must be 'error', 'drop' or 'repair', not {torn_tail!r}")
    p = Path(path)
    offset, torn_at = 0, None
    utf8 = encoding.lower() in UTF8_NAMES
    with open(p, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            start = offset
            offset += len(raw)
            last_unterminated = not raw.endswith(b"\n")
            body = raw
            if lineno == 1 and utf8 and body.startswith(codecs.BOM_UTF8):
                body, start = body[3:], start + 3
            try:
                text = body.decode(encoding)
                if not text.strip():
                    continue
                rec = json.loads(text)
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                if last_unterminated:
                    torn_at = (lineno, start, err)
                    break
                if isinstance(err, UnicodeDecodeError):
                    raise decode_error(err, body, encoding, p, lineno, start) from None
                raise DataFormatError(
                    f"truncated or invalid JSON ({err.msg} at column {err.colno})", file=p, line=lineno
                ) from None
            if not isinstance(rec, dict):
                raise DataFormatError(
                    f"expected a JSON object, got {type(rec).__name__}", file=p, line=lineno
                )
            check_fields(rec, required=required, types=types, file=p, line=lineno)
            yield lineno, rec
    if torn_at is None:
        return
    lineno, start, err = torn_at
    if torn_tail == "error":
        detail = err.reason if isinstance(err, UnicodeDecodeError) else f"{err.msg} at column {err.colno}"
        raise DataFormatError(
            f"truncated or invalid JSON ({detail}); it is the last line and has no newline, as an interrupted "
            "append leaves it: read with torn_tail='drop' or 'repair' (or call repair_jsonl_tail) to drop it",
            file=p,
            line=lineno,
        )
    if torn_tail == "repair":
        repair_jsonl_tail(p, encoding=encoding)  # logs what it drops
    else:
        log.warning(
            "%s line %d: ignoring a torn last line (%d bytes) left by an interrupted write",
            p,
            lineno,
            offset - start,
        )


def iter_jsonl(
    path: PathLike,
    *,
    required: Sequence[str] = (),
    types: Mapping[str, TypeSpec] | None = None,
    encoding: str = "utf-8",
    torn_tail: str = "error",
) -> Iterator[dict[str, Any]]:
    """Stream the records of a JSON Lines file (see :func:`read_jsonl`)."""
    for _, rec in iter_jsonl_numbered(
        path, required=required, types=types, encoding=encoding, torn_tail=torn_tail
    ):
        yield rec


def read_jsonl(
    path: PathLike,
    *,
    required: Sequence[str] = (),
    types: Mapping[str, TypeSpec] | None = None,
    encoding: str = "utf-8",
    torn_tail: str = "error",
) -> list[dict[str, Any]]:
    """All records of a JSON Lines file, each checked for ``required`` fields and ``types``.

    ``required`` and the keys of ``types`` are field paths (``"post.text"``, ``"user.history"``). A type
    check of ``int`` refuses ``bool``; ``float`` accepts ints. Blank lines are skipped; a UTF-8 BOM is
    dropped. ``torn_tail``: what to do with an unparseable *last* line that has no newline (what a crash
    during an append leaves): ``"error"`` (default), ``"drop"`` (log and ignore) or ``"repair"`` (log and cut
    it from the file). A bad line anywhere else is always an error.
    """
    return list(iter_jsonl(path, required=required, types=types, encoding=encoding, torn_tail=torn_tail))


def read_parquet(path: PathLike) -> pd.DataFrame:
    """A Parquet file as a DataFrame (nested columns hold dicts and lists)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as err:
        raise DataFormatError(f"not a readable Parquet file ({err})", file=path) from err


def iter_csv_rows(
    path: PathLike, encoding: str, torn_tail: str = "error"
) -> Iterator[tuple[int, dict[str, str]]]:
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
        quote = (
            following is None
            and "".join(_stdio.StringIO(text, newline="").readlines()[row_first - 1 :]).count('"') % 2 == 1
        )
        if following is None and (quote or not text.endswith(("\n", "\r"))):
            where = "inside a quoted cell that never closes" if quote else "without a line break"
            problem = (
                f"the file ends {where}: the last row looks cut off (a truncated download or copy?); "
                "torn_tail='drop' drops it, 'keep' keeps it"
            )
            if torn_tail == "error":
                raise DataFormatError(problem, file=path, line=row_first)
            if torn_tail == "drop":
                warnings.warn(f"{path} line {row_first}: {problem}; dropped", stacklevel=3)
                return
        if None in row:  # more cells than header columns
            raise DataFormatError(
                f"{len(names) + len(row[None])} cells for {len(names)} columns", file=path, line=line
            )
        missing = [k for k, v in row.items() if v is None]
        if missing and not (following is None and torn_tail == "keep"):
            raise DataFormatError(
                f"{len(names) - len(missing)} cells for {len(names)} columns",
                file=path,
                line=line,
                field=missing[0],
            )
        yield line, {k: (v if v is not None else "") for k, v in row.items()}
        row = following
