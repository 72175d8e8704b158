"""Crash-safe crawl output: JSON Lines appended page by page, and a checkpoint that says how far they are valid.

Each commit appends a page's records to the ``.jsonl`` files, fsyncs them, and then atomically replaces
``checkpoint.json`` (temp file + fsync + ``os.replace``) with the new file sizes and crawl state. A kill at any
moment leaves either the old checkpoint (and maybe a few bytes past its sizes) or the new one. On resume the
files are cut back to the checkpointed sizes, so no record is lost or written twice and a resumed crawl ends
byte-identical to an uninterrupted one. The de-duplication keys are rebuilt from the files themselves.

One writer at a time: the store holds an exclusive lock on ``.crawl.lock`` in the folder for as long as it is
open (released by the OS if the process dies), and a second crawl on the same folder is refused
(``OutputLocked``) instead of appending duplicates and cutting the other's tail. Files of a folder without a
checkpoint are never cut: such a folder is not a crawl output, and the store refuses it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from socialalign_lib.data.schema import Post, Topic, User
from socialalign_lib.data.write import write_text

FILES = ("topics", "posts_by_topic", "comments", "users")
CHECKPOINT = "checkpoint.json"
LOCK_FILE = ".crawl.lock"
VERSION = 1


def dumps(obj: Any) -> str:
    """One canonical JSON line (the world's writer uses the same form, so files diff cleanly)."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _key(name: str, rec: dict[str, Any]) -> str:
    if name == "topics":
        return rec["topic_id"]
    if name == "posts_by_topic":
        return f"{rec['topic_id']}/{rec['post']['post_id']}"
    if name == "comments":
        return rec["comment"]["post_id"]
    return rec["user_id"]


class OutputLocked(RuntimeError):
    """Another process (or another open ``CrawlStore``) is writing this crawl folder."""


def _lock(folder: Path) -> FileLock:
    lock = FileLock(folder / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise OutputLocked(
            f"{folder}: another crawl is writing to this folder (it holds {folder / LOCK_FILE}); two "
            "crawls on one output would duplicate records. Wait for it to finish (or stop it), then "
            "rerun to resume, or choose another --out-dir"
        ) from None
    return lock


def _fresh_state() -> dict[str, Any]:
    return {
        "version": VERSION,
        "sizes": dict.fromkeys(FILES, 0),
        "search": {},
        "user_queue": [],
        "users_done": [],
    }


class CrawlStore:
    """The output folder of one crawl: four JSONL files and ``checkpoint.json``.

    ``state`` is the crawler's progress (per hashtag: next page, comment cursors; the user queue; users done);
    ``commit(records, state)`` makes a page's records and the new state durable together. The folder is locked
    until ``close()`` (or the end of a ``with`` block).
    """

    def __init__(self, out_dir: str | os.PathLike, resume: bool = True, fsync: bool = True) -> None:
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.ckpt_path = self.dir / CHECKPOINT
        self.keys: dict[str, set[str]] = {name: set() for name in FILES}
        self.resumed = False
        self._lock: FileLock | None = _lock(self.dir)
        try:
            self._open(resume)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the folder's lock (the files themselves are closed after every commit)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> CrawlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, resume: bool) -> None:
        if resume and self.ckpt_path.exists():
            try:
                self.state = json.loads(self.ckpt_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{self.ckpt_path}: unreadable checkpoint ({err.msg} at line {err.lineno})"
                ) from err
            if not isinstance(self.state, dict) or self.state.get("version") != VERSION:
                raise ValueError(f"{self.ckpt_path}: not a version-{VERSION} crawl checkpoint")
            self.resumed = True
        else:
            if not self.ckpt_path.exists():
                foreign = [
                    self.path(n) for n in FILES if self.path(n).exists() and self.path(n).stat().st_size
                ]
                if foreign:
                    raise ValueError(
                        f"{foreign[0]}: not empty, but {self.dir} has no {CHECKPOINT}, so these are not "
                        "this crawler's files (or the checkpoint was deleted); nothing was changed. "
                        "Choose an empty --out-dir"
                    )
            self.state = _fresh_state()
            self._write_checkpoint()  # before the files are emptied: a kill in between leaves a consistent folder
        for name in FILES:
            path = self.path(name)
            size = self.state["sizes"][name]
            with open(path, "ab") as f:  # creates a missing file; cuts a torn tail back to the last commit
                if f.tell() < size:
                    raise ValueError(
                        f"{path}: {f.tell()} bytes on disk but the checkpoint vouches for {size}; "
                        "the output folder was changed behind the crawler's back"
                    )
                f.truncate(size)
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    try:
                        self.keys[name].add(_key(name, json.loads(line)))
                    except (json.JSONDecodeError, KeyError, TypeError) as err:
                        raise ValueError(f"{path}:{lineno}: unreadable crawl record ({err})") from err

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.jsonl"

    def has(self, name: str, key: str) -> bool:
        return key in self.keys[name]

    def commit(self, records: dict[str, list[dict[str, Any]]] | None = None) -> None:
        """Append ``records`` (file name → dicts; keys already present are dropped) and persist ``self.state``."""
        if self._lock is None:
            raise RuntimeError(
                f"{self.dir}: the crawl store is closed (its lock released); open a new one to write"
            )
        for name, recs in (records or {}).items():
            lines = []
            for rec in recs:
                k = _key(name, rec)
                if k in self.keys[name]:
                    continue
                self.keys[name].add(k)
                lines.append(dumps(rec) + "\n")
            if not lines:
                continue
            with open(self.path(name), "ab") as f:
                f.write("".join(lines).encode("utf-8"))
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
                self.state["sizes"][name] = f.tell()
        self._write_checkpoint()

    def _write_checkpoint(self) -> None:
        write_text(self.ckpt_path, dumps(self.state) + "\n", fsync=self.fsync)


@dataclass
class CrawlData:
    """A crawl folder read back: schema objects, in file order."""

    topics: list[Topic] = field(default_factory=list)
    posts: list[tuple[str, Post]] = field(default_factory=list)  # (topic_id, post)
    comments: list[tuple[str, str, Post]] = field(
        default_factory=list
    )  # (topic_id, commented post id, comment)
    users: list[User] = field(default_factory=list)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not JSON ({err.msg})") from err
    return out


def load_crawl(out_dir: str | os.PathLike) -> CrawlData:
    """Read ``topics.jsonl``, ``posts_by_topic.jsonl``, ``comments.jsonl`` and ``users.jsonl`` of a crawl."""
    d = Path(out_dir)
    return CrawlData(
        topics=[Topic.from_dict(r) for r in _read_jsonl(d / "topics.jsonl")],
        posts=[(r["topic_id"], Post.from_dict(r["post"])) for r in _read_jsonl(d / "posts_by_topic.jsonl")],
        comments=[
            (r["topic_id"], r["post_id"], Post.from_dict(r["comment"]))
            for r in _read_jsonl(d / "comments.jsonl")
        ],
        users=[User.from_dict(r) for r in _read_jsonl(d / "users.jsonl")],
    )
