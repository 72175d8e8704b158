"""Resumable JSON Lines outputs: one writer at a time, durable batches, a torn last line repaired.

:func:`append_jsonl` is for resumable writers (persona caches, crawls, generated replies): each batch is written
in one ``write`` and fsynced. A crash can then only tear the *last* line; the next append (or
``read_jsonl(..., torn_tail="repair")``) cuts that torn tail off and logs it (:func:`repair_jsonl_tail`), while a
bad line anywhere else stays an error — silently skipping it would hide real corruption. Only the file's one
writer may cut: :func:`exclusive_output` gives a resumable output one writer (an OS lock; a second is refused),
and readers that do not hold it use ``torn_tail="drop"``, which never changes the file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .errors import OutputLockedError, PathLike
from .write import _fsync_dir, _line_bytes

log = logging.getLogger(__name__)

__all__ = ["exclusive_output", "lock_path", "TornTail", "repair_jsonl_tail", "append_jsonl"]


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
        raise OutputLockedError(
            f"{target}: another process is writing this {what} (lock {lock_path(target)} is "
            "held); wait for it to finish, or write to another file"
        ) from None
    try:
        yield target
    finally:
        lock.release()


@dataclass
class TornTail:
    """What :func:`repair_jsonl_tail` found at the end of a JSON Lines file after a crash."""

    file: str
    line: int  # the torn line's number
    offset: int  # byte offset where it starts (the file is cut back to this length)
    dropped: bytes  # the bytes removed

    def __str__(self) -> str:
        preview = self.dropped[:60].decode("utf-8", "replace")
        return (
            f"{self.file} line {self.line}: dropped a torn last line ({len(self.dropped)} bytes, "
            f"{preview!r}...) left by an interrupted write"
        )


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


def append_jsonl(
    path: PathLike, records: Iterable[Any], *, sort_keys: bool = True, fsync: bool = True
) -> int:
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
