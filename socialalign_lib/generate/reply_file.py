"""One replies file: the rows both generation backends (HF ``generate`` and vLLM) write, and how they resume.

A replies file is JSON Lines, one :data:`REPLY_COLUMNS` row per record, keyed by :func:`reply_key`
(``case_id|variant``). :class:`ReplyFile` is the one implementation of its life cycle: lock it against a second
writer, read the rows already there (a torn last line from a killed run is repaired), hand out only the records
still to do, append each finished batch atomically, and return every row in the records' order. An interrupted
run therefore resumes without duplicates, whichever backend wrote the earlier rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from socialalign_lib.data import append as data_append
from socialalign_lib.data import read as data_read

__all__ = ["REPLY_COLUMNS", "ReplyFile", "check_records", "reply_key", "reply_row"]

#: Columns of a replies frame (and of its JSONL file), in order.
REPLY_COLUMNS: tuple[str, ...] = (
    "case_id",
    "topic_id",
    "user_id",
    "category",
    "split",
    "variant",
    "reference",
    "sentiment",
    "generated",
    "gate_a",
    "gate_b",
)
_RECORD_FIELDS: tuple[str, ...] = ("case_id", "instruction", "user_span", "news_span")


def reply_key(record: Mapping[str, Any]) -> str:
    """``case_id|variant``: what keys a reply in a replies file (resume skips the keys already there)."""
    return f"{record['case_id']}|{record.get('variant', '')}"


def check_records(records: list[dict[str, Any]]) -> None:
    """Every record has the fields generation needs and a unique :func:`reply_key`; raises naming the record."""
    for i, rec in enumerate(records):
        missing = [f for f in _RECORD_FIELDS if f not in rec or rec[f] is None]
        if missing:
            raise ValueError(f"record {i} (case {rec.get('case_id')!r}): missing field(s) {missing}")
    keys = [reply_key(r) for r in records]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"records repeat (case_id, variant) {dup!r}: each reply is keyed by it")


def reply_row(rec: Mapping[str, Any], text: str, gate_a: Sequence[float], gate_b: Sequence[float]) -> dict:
    """One replies-file row (:data:`REPLY_COLUMNS`): the record's ids and reference with the generated text and
    the mean gates (empty lists where the backend does not report them)."""
    return {
        "case_id": rec["case_id"],
        "topic_id": rec.get("topic_id"),
        "user_id": rec.get("user_id"),
        "category": rec.get("category"),
        "split": rec.get("split"),
        "variant": rec.get("variant"),
        "reference": rec.get("output"),
        "sentiment": rec.get("sentiment"),
        "generated": text,
        "gate_a": [float(x) for x in gate_a],
        "gate_b": [float(x) for x in gate_b],
    }


class ReplyFile:
    """The replies of one model and decoding config, in memory and (with a path) on disk.

    Open it with :meth:`open` (which locks the file), take :meth:`pending` records, :meth:`append` each finished
    batch and read the result with :meth:`frame`. Rows already in the file are trusted as they are: keep one file
    per model and decoding config (``generate.paths``). Without a path nothing is read or written.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.done: dict[str, dict[str, Any]] = {}
        self.new: dict[str, dict[str, Any]] = {}

    @classmethod
    @contextmanager
    def open(cls, path: str | Path | None) -> Iterator[ReplyFile]:
        """A :class:`ReplyFile` for ``path``, locked while the block runs (``io.exclusive_output``: a second
        writer gets ``OutputLockedError`` rather than appending every row again); no lock without a path."""
        if path is None:
            yield cls(None)
            return
        with data_append.exclusive_output(path, "replies file"):
            yield cls(path)

    def pending(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Read the rows already in the file and return the ``records`` that have none, in order."""
        if self.path is not None and self.path.exists():
            self.done = {reply_key(r): r for r in data_read.read_jsonl(self.path, torn_tail="repair")}
        return [r for r in records if reply_key(r) not in self.done]

    def append(self, records: Sequence[Mapping[str, Any]], rows: list[dict[str, Any]]) -> None:
        """Keep the finished ``rows`` of ``records`` (same order) and append them to the file in one atomic write."""
        if self.path is not None:
            data_append.append_jsonl(self.path, rows)
        self.new.update({reply_key(r): row for r, row in zip(records, rows)})

    def frame(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        """One :data:`REPLY_COLUMNS` row per record, in the records' order (rows read back from the file included)."""
        rows = {**self.done, **self.new}
        return pd.DataFrame([rows[reply_key(r)] for r in records], columns=list(REPLY_COLUMNS))
