"""Inputs of the ``socialalign`` commands: where users and cases come from (the ``source`` option group), case
files (schema JSONL or the official SocialAlign JSON), a ``personas.jsonl``, and the records of a ``build`` folder.

These readers are stricter than the library loaders, as a command has no caller to catch a mistake later.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .common import CommandError

log = logging.getLogger("socialalign")

BUILD_FILE = "build.json"
DATASET_DIR = "dataset"
JSONL_DIR = "jsonl"


@dataclass
class Source:
    """Where users and cases come from: the embedded world (default) or real files."""

    size: str = "course"  # world size when no --cases / --users is given: tiny, course, large
    seed: int = 0  # world seed
    cases: str | None = (
        None  # a case JSONL (our schema) or the official SocialAlign Alpaca JSON, instead of the world
    )
    cases_format: Literal["auto", "schema", "socialalign"] = "auto"  # auto: by the first record's keys
    users: str | None = None  # persona only: a users JSONL (our schema) or a crawl folder (its users.jsonl)
    split: str | None = (
        None  # build only: put every case of --cases in this split (official files carry none)
    )


def load_cases(path: str | os.PathLike, fmt: str = "auto") -> list[Any]:
    """Cases from a schema case JSONL (``io.load_cases``) or the official SocialAlign Alpaca JSON
    (``loaders.load_socialalign_cases``); ``fmt="auto"`` looks at the first record's keys.

    Stricter than the library loaders, as a command has no caller to catch a mistake later: case ids must be
    unique, labels one of ``schema.SENTIMENTS`` (or empty: unlabelled), reply texts non-empty, times ISO 8601
    and text fields at most ``io.MAX_FIELD_CHARS`` long."""
    from socialalign_lib.data.loaders.socialalign import load_socialalign_cases
    from socialalign_lib.data.read import iter_json_records
    from socialalign_lib.data.schema import SENTIMENTS
    from socialalign_lib.data.validate import load_cases as load_schema_cases

    if fmt == "auto":
        first = next((rec for _, rec in iter_json_records(path)), None)
        if not isinstance(first, dict):
            raise CommandError(f"{path}: no records, or the first is not an object")
        fmt = "schema" if "case_id" in first else "socialalign" if "instruction" in first else ""
        if not fmt:
            raise CommandError(
                f"{path}: first record has neither 'case_id' (schema case) nor 'instruction' "
                "(SocialAlign Alpaca); give --cases-format"
            )
    if fmt == "schema":
        return load_schema_cases(path, labels=(*SENTIMENTS, ""), unique_ids=True)
    cases = load_socialalign_cases(path)
    _check_cases(cases, path)
    return cases


def _check_cases(cases: Sequence[Any], path: str | os.PathLike) -> None:
    """The checks ``io.load_cases`` makes on schema files, for cases converted from another format."""
    from socialalign_lib.data.errors import DataFormatError
    from socialalign_lib.data.schema import SENTIMENTS
    from socialalign_lib.data.validate import validate_case

    seen: dict[str, int] = {}
    for i, case in enumerate(cases, 1):
        where = f"{path} record {i} ({case.case_id})"
        first = seen.setdefault(case.case_id, i)
        if first != i:
            raise DataFormatError(f"duplicate case_id (first in record {first})", file=where, field="case_id")
        try:
            validate_case(case.to_dict(), file=where, labels=(*SENTIMENTS, ""), allow_empty_history=True)
        except DataFormatError as err:
            raise DataFormatError(err.problem, file=where, field=err.field) from None


def read_personas(path: str | os.PathLike) -> dict[str, Any]:
    """``user_id → Persona`` from a ``personas.jsonl`` written by :class:`persona.PersonaExtractor` (failures are
    skipped, with a warning). One backend per file: a file mixing backends is refused, as it is ambiguous."""
    from socialalign_lib.build.persona.extractor import PersonaExtractor, PersonaRecord
    from socialalign_lib.data.read import read_jsonl

    file = Path(path)
    if file.is_dir():
        file = file / PersonaExtractor.CACHE_NAME
    if not file.exists():
        raise CommandError(f"{file}: no personas file (run `socialalign persona` first)")
    # "drop", not "repair": a reader never rewrites the file (a persona run may be appending to it right now)
    records = [PersonaRecord.from_dict(r) for r in read_jsonl(file, torn_tail="drop")]
    backends = sorted({r.backend for r in records})
    if len(backends) > 1:
        raise CommandError(f"{file}: personas of several backends {backends}; keep one backend per folder")
    personas = {r.user_id: r.persona for r in records if r.ok}
    failed = {r.user_id for r in records if not r.ok} - set(personas)
    if failed:
        log.warning("%s: %d user(s) without a persona (failed extraction)", file, len(failed))
    return personas


def load_records(path: str | os.PathLike, split: str) -> Any:
    """One split of a ``build`` output folder / saved ``DatasetDict``, or every record of a ``.jsonl`` file."""
    p = Path(path)
    if p.is_file():
        from datasets import Dataset

        from socialalign_lib.build.records.dataset import record_features
        from socialalign_lib.data.read import read_jsonl

        return Dataset.from_list(read_jsonl(p), features=record_features())
    from datasets import load_from_disk

    folder = p / DATASET_DIR if (p / DATASET_DIR).is_dir() else p
    if not folder.is_dir():
        raise CommandError(f"{p}: not a `socialalign build` folder, a saved DatasetDict or a .jsonl file")
    try:
        # keep_in_memory: .filter / .map on a dataset backed by files write cache-*.arrow beside those files,
        # i.e. into the input folder; in memory they write nothing there (records are small text)
        data = load_from_disk(str(folder), keep_in_memory=True)
    except (IndexError, ValueError, FileNotFoundError) as err:
        raise CommandError(
            f"{folder}: cannot be loaded ({type(err).__name__}: {err}); an empty split saved by an "
            "older `socialalign build`? build it again"
        ) from None
    if hasattr(data, "keys"):
        if split not in data:
            raise CommandError(f"{folder}: no split {split!r}; splits are {list(data.keys())}")
        return data[split]
    return data


def _build_info(dataset: str) -> dict[str, Any]:
    file = Path(dataset) / BUILD_FILE
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
