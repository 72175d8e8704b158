"""Storage that never loses data, and loading that says exactly what is wrong (docs/design.md#errors-and-storage).

Writing. Every whole-file writer (:func:`write_jsonl`, :func:`write_json`, :func:`write_text`,
:func:`write_parquet`) writes a temp file in the target's folder, fsyncs it and ``os.replace``-s it over the
target: a reader (or a crash) sees the old file or the new one, never half of each, and a record that cannot
be serialised leaves the old file untouched and no temp file behind. JSON is written in one canonical form
(UTF-8, ``ensure_ascii=False``, sorted keys, compact separators, ``\\n`` line ends, no NaN), so the same
records give the same bytes and a seeded world is byte-identical run after run.

Appending. :func:`append_jsonl` is for resumable writers (persona caches, crawls): each batch is written in
one ``write`` and fsynced. A crash can then only tear the *last* line; the next append (or
``read_jsonl(..., torn_tail="repair")``) cuts that torn tail off and logs it, while a bad line anywhere
else stays an error — silently skipping it would hide real corruption. Only the file's one writer may cut:
:func:`exclusive_output` gives a resumable output one writer (an OS lock; a second is refused), and readers
that do not hold it use ``torn_tail="drop"``, which never changes the file.

Reading. :func:`read_jsonl` / :func:`iter_jsonl` decode line by line and raise :class:`DataFormatError`,
whose message names file, line and field (``data/x.jsonl line 17, field 'user.history[2].text': missing``).
A file in GB18030 read as UTF-8 gets a hint to pass ``encoding="gb18030"``.

Schema records. ``validate_*`` check one dict against the shared data model (``schema.py``) and return the
dataclass; ``load_*`` do that for a whole file. :func:`to_dataset` / :func:`load_dataset_jsonl` give a
``datasets.Dataset`` with nested fields kept nested (explicit features for schema records, so columns that
happen to be all ``None`` in one file still get their real type).
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .schema import PERSONA_FIELDS, Case, Persona, Post, RecordParts, Response, Topic, User

if TYPE_CHECKING:
    import datasets
    import pandas as pd

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
TypeSpec = type | tuple[type, ...]

__all__ = [
    "DataFormatError", "OutputLockedError", "TornTail", "exclusive_output", "lock_path", "replace_dir",
    "MAX_FIELD_CHARS", "dumps_canonical", "write_jsonl", "append_jsonl", "write_json", "write_text", "write_parquet",
    "iter_jsonl", "iter_jsonl_numbered", "read_jsonl", "repair_jsonl_tail", "read_text", "read_json",
    "iter_json_records", "read_parquet", "check_fields",
    "validate_topic", "validate_post", "validate_persona", "validate_user", "validate_response", "validate_case",
    "VALIDATORS", "guess_kind", "load_topics", "load_posts", "load_users", "load_responses", "load_cases",
    "features_for", "to_dataset", "load_dataset_jsonl", "load_dataset_parquet",
]


# ------------------------------------------------------------------------------------------------ errors


class DataFormatError(ValueError):
    """A data file does not hold what it should. ``file``, ``line`` (1-based) and ``field`` (a path such as
    ``user.history[2].text``) say where; ``problem`` says what. ``str(err)`` joins them into one sentence.

    Every part is optional, so ``DataFormatError("free text")`` also works.
    """

    def __init__(self, problem: str, *, file: PathLike | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.problem = problem
        self.file = None if file is None else str(file)
        self.line = line
        self.field = field or None
        super().__init__(self._message())

    def _message(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.line is not None:
            where.append(f"line {self.line}")
        head = " ".join(where)
        if self.field is not None:
            head = f"{head}, field '{self.field}'" if head else f"field '{self.field}'"
        return f"{head}: {self.problem}" if head else self.problem

    def __reduce__(self):  # keep the keyword-only attributes through pickling (multiprocessing, num_proc)
        return (_rebuild_error, (self.problem, self.file, self.line, self.field))


def _rebuild_error(problem: str, file: str | None, line: int | None, field: str | None) -> DataFormatError:
    return DataFormatError(problem, file=file, line=line, field=field)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class OutputLockedError(RuntimeError):
    """Another process is writing the same output (its lock file is held); the message names the file."""


# ------------------------------------------------------------------------------------------------ writing


def lock_path(path: PathLike) -> Path:
    """The lock file that guards ``path`` against a second writer: ``<path>.lock`` beside it."""
    p = Path(path)
    return p.with_name(p.name + ".lock")


@contextmanager
def exclusive_output(path: PathLike, what: str = "output") -> Iterator[Path]:
    """Hold an exclusive lock on a resumable output (``<path>.lock``, an OS file lock) for the ``with`` block.

    Why: two processes appending to one resumable file each skip the rows done *when they started* and then
    write the rest again (every row twice), and one's torn-tail repair can cut the other's half-written
    line. The lock is released by the OS when the holder dies, so a killed run never blocks its own resume.
    A second writer is refused at once with :class:`OutputLockedError` rather than made to wait: waiting
    would let it redo, afterwards, work the first already did. ``thread_local=False``: threads of the
    holding process (``max_workers``) share the lock.
    """
    from filelock import FileLock, Timeout

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path(target)), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise OutputLockedError(f"{target}: another process is writing this {what} (lock {lock_path(target)} is "
                                "held); wait for it to finish, or write to another file") from None
    try:
        yield target
    finally:
        lock.release()


def replace_dir(staging: PathLike, target: PathLike) -> Path:
    """Swap a fully written folder ``staging`` in for ``target`` (both in the same parent folder).

    A folder cannot be replaced in one ``os.replace``; the old one is first renamed aside, so a crash leaves
    either the old folder, the new one, or (between the two renames) none with the old one kept as
    ``.<name>.old-*`` — never a mix of old and new files.
    """
    staging, target = Path(staging), Path(target)
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
    os.replace(staging, target)
    _fsync_dir(target.parent)
    if old is not None:
        import shutil

        shutil.rmtree(old, ignore_errors=True)
    return target


def _json_default(obj: Any) -> Any:
    """Values ``json`` does not know but data code produces all the time: numpy scalars and arrays, and the
    schema dataclasses. Sets are refused on purpose: their order is not deterministic."""
    if hasattr(obj, "to_dict") and is_dataclass(obj):
        return obj.to_dict()
    if type(obj).__module__ == "numpy" and hasattr(obj, "tolist"):  # np.int64, np.float32, ndarray
        return obj.tolist()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def dumps_canonical(obj: Any, *, sort_keys: bool = True, indent: int | None = None) -> str:
    """The one JSON form every writer uses: UTF-8 text as is, sorted keys, compact, NaN/Infinity refused
    (they are not JSON, and other tools reject them)."""
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(obj, ensure_ascii=False, sort_keys=sort_keys, separators=separators, indent=indent,
                      allow_nan=False, default=_json_default)


def _as_record(obj: Any) -> Any:
    return obj.to_dict() if is_dataclass(obj) and hasattr(obj, "to_dict") else obj


def _line_bytes(record: Any, sort_keys: bool, path: Path, index: int) -> bytes:
    try:
        return (dumps_canonical(_as_record(record), sort_keys=sort_keys) + "\n").encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as err:  # not serialisable / NaN / lone surrogate
        raise DataFormatError(f"record {index} cannot be written as JSON ({err})", file=path,
                              line=index + 1) from err


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory file descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _atomic_write(path: PathLike, write: Callable[[BinaryIO], None], fsync: bool = True) -> Path:
    """Run ``write(f)`` on a temp file next to ``path``, fsync, then ``os.replace`` it into place.
    ``fsync=False`` keeps the atomic replace but skips the disk flushes (crash-safe against a killed process,
    not against a power cut; the crawler's ``--no-fsync``).

    The temp file is created with mode 0o666 minus the umask (``mkstemp`` would make it 0o600, and the
    replaced file would silently become private). On any exception the temp file is removed and the old
    ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_dir(target.parent)
    return target


def write_jsonl(path: PathLike, records: Iterable[Any], *, sort_keys: bool = True) -> Path:
    """Write ``records`` (dicts or schema dataclasses) as JSON Lines, atomically, in the canonical form.

    Records are streamed to the temp file, so a large list is not held twice in memory. A record that
    cannot be serialised raises :class:`DataFormatError` naming its index and the would-be line.
    """
    target = Path(path)

    def write(f: BinaryIO) -> None:
        for i, rec in enumerate(records):
            f.write(_line_bytes(rec, sort_keys, target, i))

    return _atomic_write(target, write)


def write_json(path: PathLike, obj: Any, *, sort_keys: bool = True, indent: int | None = 2) -> Path:
    """One JSON document (configs, metrics, world metadata), atomically, with a final newline."""
    target = Path(path)
    try:
        data = (dumps_canonical(_as_record(obj), sort_keys=sort_keys, indent=indent) + "\n").encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as err:
        raise DataFormatError(f"cannot be written as JSON ({err})", file=target) from err
    return _atomic_write(target, lambda f: f.write(data))


def write_text(path: PathLike, text: str, *, encoding: str = "utf-8", fsync: bool = True) -> Path:
    """Text, atomically; ``\\n`` stays ``\\n`` on every platform (the file is written in binary)."""
    data = text.encode(encoding)
    return _atomic_write(path, lambda f: f.write(data), fsync=fsync)


def _to_arrow_table(data: Any):
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    try:
        import datasets

        if isinstance(data, datasets.Dataset):
            if data._indices is not None:  # a shuffled/selected view: materialise the rows it shows
                data = data.flatten_indices()
            return data.data.table
    except ImportError:  # pragma: no cover - datasets is a dependency
        pass
    try:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return pa.Table.from_pandas(data, preserve_index=False)
    except ImportError:  # pragma: no cover
        pass
    return pa.Table.from_pylist([_as_record(r) for r in data])


def write_parquet(path: PathLike, data: Any, *, compression: str = "zstd") -> Path:
    """A ``pandas.DataFrame``, ``datasets.Dataset``, ``pyarrow.Table`` or list of records (dicts or schema
    dataclasses) as Parquet, atomically. Nested records stay nested (Arrow structs and lists); a Dataset
    keeps its ``features`` in the schema metadata, so :func:`load_dataset_parquet` restores them."""
    import pyarrow.parquet as pq

    table = _to_arrow_table(data)
    return _atomic_write(path, lambda f: pq.write_table(table, f, compression=compression))


@dataclass
class TornTail:
    """What :func:`repair_jsonl_tail` found at the end of a JSON Lines file after a crash."""

    file: str
    line: int  # the torn line's number
    offset: int  # byte offset where it starts (the file is cut back to this length)
    dropped: bytes  # the bytes removed

    def __str__(self) -> str:
        preview = self.dropped[:60].decode("utf-8", "replace")
        return (f"{self.file} line {self.line}: dropped a torn last line ({len(self.dropped)} bytes, "
                f"{preview!r}...) left by an interrupted write")


def _last_line_start(f: BinaryIO, size: int) -> int:
    """Byte offset just after the last ``\\n`` before ``size`` (0 if none), reading backwards in chunks."""
    pos = size
    while pos > 0:
        step = min(65536, pos)
        f.seek(pos - step)
        chunk = f.read(step)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return pos - step + i + 1
        pos -= step
    return 0


def _count_newlines(f: BinaryIO, end: int) -> int:
    f.seek(0)
    n, pos = 0, 0
    while pos < end:
        chunk = f.read(min(1 << 20, end - pos))
        if not chunk:
            break
        n += chunk.count(b"\n")
        pos += len(chunk)
    return n


def repair_jsonl_tail(path: PathLike, *, encoding: str = "utf-8") -> TornTail | None:
    """Make a JSON Lines file end on a complete line again after a crash; return what was dropped.

    Only the part after the last newline is looked at. If it is a complete JSON object (a crash between
    the record and its newline) the newline is added and nothing is lost; if it is not, it can only be a
    torn write, so the file is cut back to the last newline and the loss is logged. Lines before it are
    never touched: a bad line there is an error for the reader to report, not for this to hide.
    """
    p = Path(path)
    if not p.exists():
        return None
    with open(p, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return None
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return None
        start = _last_line_start(f, size)
        f.seek(start)
        tail = f.read()
        try:
            text = tail.decode(encoding).lstrip("\ufeff")
            complete = not text.strip() or isinstance(json.loads(text), dict)
        except (UnicodeDecodeError, json.JSONDecodeError):
            complete = False
        if complete:
            f.seek(size)
            f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())
            return None
        line = _count_newlines(f, start) + 1
        f.truncate(start)
        f.flush()
        os.fsync(f.fileno())
    torn = TornTail(str(p), line, start, tail)
    log.warning("%s", torn)
    return torn


def append_jsonl(path: PathLike, records: Iterable[Any], *, sort_keys: bool = True, fsync: bool = True) -> int:
    """Append ``records`` to a JSON Lines file as one durable batch; return how many were written.

    The whole batch is serialised first (a bad record raises before a byte is written), then written in
    one call, flushed and fsynced. A torn tail left by an earlier crash is repaired first (see
    :func:`repair_jsonl_tail`); otherwise the new records would be glued onto the broken line and turn a
    recoverable tail into corruption in the middle of the file.
    """
    target = Path(path)
    data = b"".join(_line_bytes(r, sort_keys, target, i) for i, r in enumerate(records))
    target.parent.mkdir(parents=True, exist_ok=True)
    created = not target.exists()
    if not created:
        repair_jsonl_tail(target)
    if not data:
        return 0
    with open(target, "ab") as f:
        f.write(data)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    if created and fsync:
        _fsync_dir(target.parent)
    return data.count(b"\n")


# ------------------------------------------------------------------------------------------------ reading

_UTF8_NAMES = {"utf-8", "utf8", "utf_8", "utf-8-sig", "utf_8_sig"}
_CJK = re.compile(r"[\u3400-\u9fff]")


_GB_NAMES = {"gb18030", "gbk", "gb2312", "cp936", "936", "gb-18030", "gb_18030"}


def _encoding_error(err: UnicodeDecodeError, raw: bytes, encoding: str, file: Path, line: int | None,
                    base_offset: int, at_end: bool = False) -> DataFormatError:
    """Name the first bad byte and hint at the likely true encoding: GB18030 for a Chinese file read as UTF-8
    (Windows exports, older Weibo dumps), UTF-8 for one read as GB18030 (modern exports, the crawlers).
    ``at_end``: the bad bytes are the file's last ones, so the file was most likely cut mid-character."""
    bad = raw[err.start:err.start + 1]
    problem = (f"not {'UTF-8' if encoding.lower() in _UTF8_NAMES else encoding} "
               f"(byte 0x{bad.hex()} at offset {base_offset + err.start})")
    if at_end:
        problem += "; the file ends mid-character: it looks truncated (an interrupted download or copy)"
    elif encoding.lower() in _UTF8_NAMES:
        try:
            as_gb = raw.decode("gb18030")
        except UnicodeDecodeError:
            as_gb = ""
        if _CJK.search(as_gb):
            problem += '; it looks like GB18030: pass encoding="gb18030"'
    elif encoding.lower() in _GB_NAMES and _CJK.search(_utf8_or_empty(raw)):
        problem += '; it looks like UTF-8: pass encoding="utf-8"'
    return DataFormatError(problem, file=file, line=line)


def _utf8_or_empty(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return ""


def read_text(path: PathLike, *, encoding: str = "utf-8") -> str:
    """A whole text file, with a decoding error that names line and byte (and suggests the likely encoding).

    A UTF-8 byte-order mark is dropped (Excel and the weibo crawler write ``utf-8-sig``). ``encoding="auto"``
    takes the first *strict* decode of UTF-8 (BOM or not), then GB18030 (``clean.decode_bytes``), so neither
    guess can silently produce mojibake. A file read as GB18030 that is valid UTF-8 with non-ASCII text is
    refused: GB18030 decodes most UTF-8 Chinese without an error, into mojibake, while real GB18030 Chinese
    text is practically never valid UTF-8.
    """
    p = Path(path)
    raw = p.read_bytes()
    if encoding.lower() == "auto":
        from .clean import decode_bytes  # clean imports this module

        return decode_bytes(raw, p).lstrip("\ufeff")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        line_start = raw.rfind(b"\n", 0, err.start) + 1
        line_end = raw.find(b"\n", err.start)
        line_raw = raw[line_start:] if line_end < 0 else raw[line_start:line_end]
        sub = UnicodeDecodeError(err.encoding, line_raw, err.start - line_start, err.end - line_start, err.reason)
        at_end = line_end < 0 and len(raw) - err.start <= 3 and _decodes_if_cut(raw, err.start, encoding)
        raise _encoding_error(sub, line_raw, encoding, p, raw.count(b"\n", 0, err.start) + 1, line_start,
                              at_end=at_end) from None
    if encoding.lower() in _GB_NAMES and not raw.isascii() and _CJK.search(_utf8_or_empty(raw)):
        first = next(i for i, b in enumerate(raw) if b >= 0x80)
        raise DataFormatError(f"read as {encoding} but the bytes are valid UTF-8 (first non-ASCII byte at offset "
                              f"{first}): decoding them as {encoding} gives mojibake; it looks like UTF-8: pass "
                              'encoding="utf-8"', file=p, line=raw.count(b"\n", 0, first) + 1)
    return text.lstrip("\ufeff")


def _decodes_if_cut(raw: bytes, start: int, encoding: str) -> bool:
    """Whether everything before ``start`` decodes: the bad bytes are then only a character cut in half."""
    try:
        raw[:start].decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def read_json(path: PathLike, *, encoding: str = "utf-8") -> Any:
    """One JSON document; a syntax error names the line and column."""
    p = Path(path)
    text = read_text(p, encoding=encoding)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(f"truncated or invalid JSON ({err.msg} at column {err.colno})", file=p,
                              line=err.lineno) from None


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
                raise DataFormatError(f"expected a JSON array of records (or JSON Lines), got one JSON "
                                      f"{type(doc).__name__}", file=p) from None
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
            raise DataFormatError(f"truncated or invalid JSON ({err.msg} at column {err.colno})", file=p,
                                  line=err.lineno) from None
        yield line_at(i), obj
        i = ws.match(text, end).end()
        if text.startswith(",", i):
            i = ws.match(text, i + 1).end()
        elif text.startswith("]", i):
            return
        else:
            what = "the file ends" if i >= len(text) else f"found {text[i:i + 10]!r}"
            raise DataFormatError(f"truncated or invalid JSON array (expected ',' or ']'; {what})", file=p,
                                  line=line_at(i))


def iter_jsonl_numbered(path: PathLike, *, required: Sequence[str] = (), types: Mapping[str, TypeSpec] | None = None,
                        encoding: str = "utf-8", torn_tail: str = "error") -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for each non-blank line; see :func:`read_jsonl` for the arguments.

    Lines are split on ``\\n`` bytes only: ``str.splitlines`` would also split inside records at U+2028,
    U+0085 or \\x1c, which JSON leaves unescaped in strings.
    """
    if torn_tail not in ("error", "drop", "repair"):
        raise ValueError(f"torn_tail must be 'error', 'drop' or 'repair', not {torn_tail!r}")
    p = Path(path)
    offset, torn_at = 0, None
    utf8 = encoding.lower() in _UTF8_NAMES
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
                    raise _encoding_error(err, body, encoding, p, lineno, start) from None
                raise DataFormatError(f"truncated or invalid JSON ({err.msg} at column {err.colno})", file=p,
                                      line=lineno) from None
            if not isinstance(rec, dict):
                raise DataFormatError(f"expected a JSON object, got {type(rec).__name__}", file=p, line=lineno)
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
            file=p, line=lineno)
    if torn_tail == "repair":
        repair_jsonl_tail(p, encoding=encoding)  # logs what it drops
    else:
        log.warning("%s line %d: ignoring a torn last line (%d bytes) left by an interrupted write", p, lineno,
                    offset - start)


def iter_jsonl(path: PathLike, *, required: Sequence[str] = (), types: Mapping[str, TypeSpec] | None = None,
               encoding: str = "utf-8", torn_tail: str = "error") -> Iterator[dict[str, Any]]:
    """Stream the records of a JSON Lines file (see :func:`read_jsonl`)."""
    for _, rec in iter_jsonl_numbered(path, required=required, types=types, encoding=encoding, torn_tail=torn_tail):
        yield rec


def read_jsonl(path: PathLike, *, required: Sequence[str] = (), types: Mapping[str, TypeSpec] | None = None,
               encoding: str = "utf-8", torn_tail: str = "error") -> list[dict[str, Any]]:
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


# ------------------------------------------------------------------------------------------------ checks

_MISSING = object()


def _type_names(types: TypeSpec) -> str:
    ts = types if isinstance(types, tuple) else (types,)
    return " or ".join("null" if t is type(None) else t.__name__ for t in ts)


def _is_type(value: Any, types: TypeSpec) -> bool:
    ts = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):
        return bool in ts
    if isinstance(value, int) and float in ts:
        return True
    return isinstance(value, ts)


def _show(value: Any) -> str:
    s = repr(value)
    return s if len(s) <= 40 else s[:37] + "..."


def _get(record: Any, path: str) -> Any:
    cur = record
    for key in path.split("."):
        if not isinstance(cur, dict) or key not in cur:
            return _MISSING
        cur = cur[key]
    return cur


def check_fields(record: Mapping[str, Any], *, required: Sequence[str] = (),
                 types: Mapping[str, TypeSpec] | None = None, file: PathLike | None = None,
                 line: int | None = None, prefix: str = "") -> None:
    """Raise :class:`DataFormatError` if a ``required`` field path is missing or a field in ``types`` has
    the wrong type (absent fields are only checked by ``required``)."""
    for name in required:
        if _get(record, name) is _MISSING:
            raise DataFormatError("missing", file=file, line=line, field=_join(prefix, name))
    for name, t in (types or {}).items():
        value = _get(record, name)
        if value is not _MISSING and not _is_type(value, t):
            raise DataFormatError(f"expected {_type_names(t)}, got {type(value).__name__} ({_show(value)})",
                                  file=file, line=line, field=_join(prefix, name))


# ------------------------------------------------------------------------------------------------ schema

_NONE = type(None)

MAX_FIELD_CHARS = 20_000
"""Longest text field a schema record may hold. A Weibo post is at most a few thousand characters; a field
far beyond that is a broken export (a whole file in one cell), and word segmentation of it is super-linear
(one 1M-character field made a 10-case build take minutes), so it is refused with a clear error instead."""

_TOPIC_SPEC: dict[str, tuple[TypeSpec, bool]] = {
    "topic_id": (str, True), "hashtag": (str, True), "news": (str, True), "category": (str, True), "time": (str, True),
}
_POST_SPEC: dict[str, tuple[TypeSpec, bool]] = {
    "post_id": (str, True), "user_id": (str, True), "text": (str, True), "created_at": (str, True),
    "hashtags": (list, False), "retweet": ((dict, _NONE), False),
    "likes": (int, False), "reposts": (int, False), "comments": (int, False),
    "screen_name": ((str, _NONE), False), "image_caption": ((str, _NONE), False),
    "image_features": ((list, _NONE), False),
}
_USER_SPEC: dict[str, tuple[TypeSpec, bool]] = {
    "user_id": (str, True), "screen_name": (str, True), "history": (list, True),
    "gender": ((str, _NONE), False), "location": ((str, _NONE), False), "description": ((str, _NONE), False),
    "followers": (int, False), "persona": ((dict, _NONE), False),
}
_RESPONSE_SPEC: dict[str, tuple[TypeSpec, bool]] = {
    "topic_id": (str, True), "post": (dict, True), "sentiment": (str, True), "split": (str, False),
}
_CASE_SPEC: dict[str, tuple[TypeSpec, bool]] = {
    "case_id": (str, True), "topic": (dict, True), "user": (dict, True), "response": (dict, True),
    "sentiment": (str, True), "split": (str, False), "record_parts": ((dict, type(None)), False),
}
_RECORD_PARTS_SPEC: dict[str, tuple[TypeSpec, bool]] = {
    "user_name": (str, True), "history": (list, True), "persona_text": ((str, type(None)), True),
    "news": (str, True), "hashtag": (str, True), "variant": (str, True), "instruction": (str, True),
}


class _Where:
    """File and line threaded through nested validators, so a deep error still names both."""

    __slots__ = ("file", "line")

    def __init__(self, file: PathLike | None, line: int | None) -> None:
        self.file, self.line = file, line

    def error(self, problem: str, field: str) -> DataFormatError:
        return DataFormatError(problem, file=self.file, line=self.line, field=field)


def _check_spec(record: Any, spec: Mapping[str, tuple[TypeSpec, bool]], path: str, where: _Where,
                what: str) -> None:
    if not isinstance(record, dict):
        raise where.error(f"expected a {what} object, got {type(record).__name__} ({_show(record)})", path or what)
    for name, (t, required) in spec.items():
        if name not in record:
            if required:
                raise where.error("missing", _join(path, name))
            continue
        value = record[name]
        if not _is_type(value, t):
            raise where.error(f"expected {_type_names(t)}, got {type(value).__name__} ({_show(value)})",
                              _join(path, name))
        if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
            raise where.error(f"{len(value)} characters, more than the limit of {MAX_FIELD_CHARS} "
                              "(io.MAX_FIELD_CHARS): a broken export?", _join(path, name))


def _check_time(value: str, field: str, where: _Where) -> None:
    """An ISO 8601 time (``2024-03-01T12:00:00``) or empty (unknown, as in the official Alpaca files)."""
    if not value:
        return
    import datetime as dt

    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        raise where.error(f"not an ISO 8601 time ({_show(value)}; expected e.g. '2024-03-01T12:00:00')",
                          field) from None


def _nonempty(record: dict[str, Any], names: Sequence[str], path: str, where: _Where) -> None:
    for name in names:
        if not record[name].strip():
            raise where.error("empty", _join(path, name))


def _labels_check(record: dict[str, Any], labels: Sequence[str] | None, path: str, where: _Where) -> None:
    if labels is not None and record["sentiment"] not in labels:
        raise where.error(f"unknown label {record['sentiment']!r}; expected one of {list(labels)}",
                          _join(path, "sentiment"))


def validate_topic(record: Any, *, file: PathLike | None = None, line: int | None = None,
                   path: str = "") -> Topic:
    """A topic dict → :class:`Topic`; ``topic_id`` must be non-empty (responses join on it)."""
    where = _Where(file, line)
    _check_spec(record, _TOPIC_SPEC, path, where, "topic")
    _nonempty(record, ["topic_id"], path, where)
    _check_time(record["time"], _join(path, "time"), where)
    return Topic.from_dict(record)


def _validate_post(record: Any, path: str, where: _Where) -> Post:
    _check_spec(record, _POST_SPEC, path, where, "post")
    _nonempty(record, ["post_id"], path, where)
    _check_time(record["created_at"], _join(path, "created_at"), where)
    for i, tag in enumerate(record.get("hashtags") or []):
        if not isinstance(tag, str):
            raise where.error(f"expected str, got {type(tag).__name__} ({_show(tag)})",
                              _join(_join(path, "hashtags"), i))
    for name in ("likes", "reposts", "comments"):
        if record.get(name, 0) < 0:
            raise where.error(f"negative count {record[name]}", _join(path, name))
    for i, x in enumerate(record.get("image_features") or []):
        if not _is_type(x, float):
            raise where.error(f"expected float, got {type(x).__name__} ({_show(x)})",
                              _join(_join(path, "image_features"), i))
    post = Post.from_dict(record)
    if record.get("retweet") is not None:
        post.retweet = _validate_post(record["retweet"], _join(path, "retweet"), where)
    return post


def validate_post(record: Any, *, file: PathLike | None = None, line: int | None = None, path: str = "") -> Post:
    """A post dict → :class:`Post` (a nested ``retweet`` is validated too)."""
    return _validate_post(record, path, _Where(file, line))


def _validate_persona(record: Any, path: str, where: _Where) -> Persona:
    _check_spec(record, {name: (str, True) for name in PERSONA_FIELDS}, path, where, "persona")
    return Persona.from_dict(record)


def validate_persona(record: Any, *, file: PathLike | None = None, line: int | None = None,
                     path: str = "") -> Persona:
    """A persona dict → :class:`Persona`: all five items, as strings."""
    return _validate_persona(record, path, _Where(file, line))


def _validate_user(record: Any, path: str, where: _Where, allow_empty_history: bool) -> User:
    _check_spec(record, _USER_SPEC, path, where, "user")
    _nonempty(record, ["user_id"], path, where)
    if not record["history"] and not allow_empty_history:
        raise where.error("empty history (a user needs at least one past post to be modelled; "
                          "drop the user or pass allow_empty_history=True)", _join(path, "history"))
    if record.get("followers", 0) < 0:
        raise where.error(f"negative count {record['followers']}", _join(path, "followers"))
    hpath = _join(path, "history")
    history = [_validate_post(p, _join(hpath, i), where) for i, p in enumerate(record["history"])]
    persona = None
    if record.get("persona") is not None:
        persona = _validate_persona(record["persona"], _join(path, "persona"), where)
    user = User.from_dict({**record, "history": [], "persona": None})
    user.history, user.persona = history, persona
    return user


def validate_user(record: Any, *, file: PathLike | None = None, line: int | None = None, path: str = "",
                  allow_empty_history: bool = False) -> User:
    """A user dict → :class:`User`. ``history`` must be a non-empty list of posts unless
    ``allow_empty_history`` (e.g. SocialAlign's ``without_history`` variant)."""
    return _validate_user(record, path, _Where(file, line), allow_empty_history)


def validate_response(record: Any, *, file: PathLike | None = None, line: int | None = None, path: str = "",
                      labels: Sequence[str] | None = None) -> Response:
    """A response dict → :class:`Response`; with ``labels``, the sentiment must be one of them."""
    where = _Where(file, line)
    _check_spec(record, _RESPONSE_SPEC, path, where, "response")
    _nonempty(record, ["topic_id"], path, where)
    _labels_check(record, labels, path, where)
    post = _validate_post(record["post"], _join(path, "post"), where)
    return Response(topic_id=record["topic_id"], post=post, sentiment=record["sentiment"],
                    split=record.get("split", "train"))


def validate_case(record: Any, *, file: PathLike | None = None, line: int | None = None, path: str = "",
                  labels: Sequence[str] | None = None, allow_empty_history: bool = False) -> Case:
    """A case dict → :class:`Case` (topic, user with history, response post, label); errors name the nested
    field, e.g. ``user.history[2].text``. An empty ``sentiment`` means "not labelled yet" and passes unless
    ``labels`` is given."""
    where = _Where(file, line)
    _check_spec(record, _CASE_SPEC, path, where, "case")
    _nonempty(record, ["case_id"], path, where)
    _labels_check(record, labels, path, where)
    topic = validate_topic(record["topic"], file=file, line=line, path=_join(path, "topic"))
    user = _validate_user(record["user"], _join(path, "user"), where, allow_empty_history)
    response = _validate_post(record["response"], _join(path, "response"), where)
    if not response.text.strip() and response.retweet is None:
        raise where.error("empty (the reply a case teaches or predicts needs text)", _join(path, "response.text"))
    parts = record.get("record_parts")
    if parts is not None:
        _check_spec(parts, _RECORD_PARTS_SPEC, _join(path, "record_parts"), where, "record_parts")
        for i, item in enumerate(parts["history"]):
            if not isinstance(item, str):
                raise where.error(f"expected str, got {type(item).__name__}", _join(path, f"record_parts.history[{i}]"))
        parts = RecordParts.from_dict(parts)
    return Case(case_id=record["case_id"], topic=topic, user=user, response=response,
                sentiment=record["sentiment"], split=record.get("split", "train"), record_parts=parts)


VALIDATORS: dict[str, Callable[..., Any]] = {
    "topic": validate_topic, "post": validate_post, "persona": validate_persona, "user": validate_user,
    "response": validate_response, "case": validate_case,
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
    return [validator(rec, file=path, line=n, **kw) for n, rec in iter_jsonl_numbered(path, encoding=encoding)]


def load_topics(path: PathLike, *, encoding: str = "utf-8") -> list[Topic]:
    """``topics.jsonl`` → validated :class:`Topic` list."""
    return _load(path, "topic", encoding)


def load_posts(path: PathLike, *, encoding: str = "utf-8") -> list[Post]:
    """A JSON Lines file of posts → validated :class:`Post` list."""
    return _load(path, "post", encoding)


def load_users(path: PathLike, *, encoding: str = "utf-8", allow_empty_history: bool = False) -> list[User]:
    """``users.jsonl`` → validated :class:`User` list (each with a non-empty history by default)."""
    return _load(path, "user", encoding, allow_empty_history=allow_empty_history)


def load_responses(path: PathLike, *, encoding: str = "utf-8", labels: Sequence[str] | None = None) -> list[Response]:
    """``responses.jsonl`` → validated :class:`Response` list."""
    return _load(path, "response", encoding, labels=labels)


def load_cases(path: PathLike, *, encoding: str = "utf-8", labels: Sequence[str] | None = None,
               allow_empty_history: bool = False, unique_ids: bool = False) -> list[Case]:
    """A JSON Lines file of cases → validated :class:`Case` list. ``unique_ids``: a ``case_id`` seen on an
    earlier line is an error (records, replies and metrics are keyed by it)."""
    cases = _load(path, "case", encoding, labels=labels, allow_empty_history=allow_empty_history)
    if unique_ids:
        seen: dict[str, int] = {}
        for n, (line, _) in enumerate(iter_jsonl_numbered(path, encoding=encoding)):
            first = seen.setdefault(cases[n].case_id, line)
            if first != line:
                raise DataFormatError(f"duplicate {cases[n].case_id!r} (first on line {first})", file=path, line=line,
                                      field="case_id")
    return cases


# ------------------------------------------------------------------------------------------------ datasets


def features_for(kind: str) -> datasets.Features:
    """Explicit ``datasets.Features`` for a schema record kind (topic, post, persona, user, response, case).

    Inference alone types an all-``None`` column as ``null`` (e.g. ``persona`` before personas exist), and
    two files then refuse to concatenate. A retweet nests one level deep, as on Weibo (a repost of a repost
    points at the root post).
    """
    from datasets import Features, List, Value

    s, i = Value("string"), Value("int64")
    topic = {"topic_id": s, "hashtag": s, "news": s, "category": s, "time": s}
    post_base = {"post_id": s, "user_id": s, "text": s, "created_at": s, "hashtags": List(s),
                 "likes": i, "reposts": i, "comments": i, "screen_name": s, "image_caption": s,
                 "image_features": List(Value("float64"))}
    post = {**post_base, "retweet": {**post_base, "retweet": Value("null")}}
    persona = dict.fromkeys(PERSONA_FIELDS, s)
    user = {"user_id": s, "screen_name": s, "history": List(post), "gender": s, "location": s,
            "description": s, "followers": i, "persona": persona}
    kinds: dict[str, dict[str, Any]] = {
        "topic": topic, "post": post, "persona": persona, "user": user,
        "response": {"topic_id": s, "post": post, "sentiment": s, "split": s},
        "case": {"case_id": s, "topic": topic, "user": user, "response": post, "sentiment": s, "split": s},
    }
    if kind not in kinds:
        raise ValueError(f"unknown record kind {kind!r}; choose one of {sorted(kinds)}")
    return Features(kinds[kind])


def to_dataset(records: Iterable[Any], *, kind: str | None = None,
               features: datasets.Features | None = None) -> datasets.Dataset:
    """Records (dicts or schema dataclasses) → ``datasets.Dataset``, nested fields kept nested.

    With ``kind`` (or dataclass records, whose kind is known) the schema's explicit features are used;
    otherwise Arrow infers the types.
    """
    from datasets import Dataset

    rows = list(records)
    if kind is None and features is None and rows and is_dataclass(rows[0]):
        kind = type(rows[0]).__name__.lower()
    dicts = [_as_record(r) for r in rows]
    if features is None and kind is not None:
        features = features_for(kind)
    return Dataset.from_list(dicts, features=features)


def load_dataset_jsonl(path: PathLike, *, validate: str | Callable[..., Any] | None = "auto",
                       encoding: str = "utf-8") -> datasets.Dataset:
    """A JSON Lines file as a ``datasets.Dataset``, validated first.

    ``validate``: a schema kind (``"user"``, ``"case"``...), ``"auto"`` (guess from the first record's keys;
    unknown shapes load unvalidated), a callable ``f(record, file=, line=)``, or ``None``. Schema records are
    normalised through their dataclass (defaults filled) and typed with :func:`features_for`. Why not
    ``datasets.load_dataset("json")``: its errors name neither line nor field, and it caches to disk.
    """
    numbered = list(iter_jsonl_numbered(path, encoding=encoding))
    kind = validate if isinstance(validate, str) else None
    if kind == "auto":
        kind = guess_kind(numbered[0][1]) if numbered else None
    if kind is not None:
        validator = VALIDATORS.get(kind)
        if validator is None:
            raise ValueError(f"unknown record kind {kind!r}; choose one of {sorted(VALIDATORS)} or 'auto'")
        rows = [validator(rec, file=path, line=n).to_dict() for n, rec in numbered]
        return to_dataset(rows, kind=kind)
    if callable(validate):
        for n, rec in numbered:
            validate(rec, file=path, line=n)
    return to_dataset([rec for _, rec in numbered])


def load_dataset_parquet(path: PathLike) -> datasets.Dataset:
    """A Parquet file (e.g. from :func:`write_parquet`) as a ``datasets.Dataset``; features saved by a
    Dataset come back from the schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataFormatError(f"not a readable Parquet file ({err})", file=path) from err
    return Dataset(table)
