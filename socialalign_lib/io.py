"""Deprecated import path: use socialalign_lib.data.{errors, write, append, read, checks, validate, hf, encoding}.

``io`` was split by job: errors (``data.errors``), atomic writers (``data.write``), resumable JSON Lines
(``data.append``), readers (``data.read``), field checks (``data.checks``), schema validation (``data.validate``),
``datasets`` (``data.hf``) and the encoding policy (``data.encoding``). Every old name still imports from here; a
name not listed below is looked up in those modules.
"""

from __future__ import annotations

from socialalign_lib.data import append as _append
from socialalign_lib.data import checks as _checks
from socialalign_lib.data import encoding as _encoding
from socialalign_lib.data import errors as _errors
from socialalign_lib.data import hf as _hf
from socialalign_lib.data import read as _read
from socialalign_lib.data import validate as _validate
from socialalign_lib.data import write as _write
from socialalign_lib.data.append import TornTail, append_jsonl, exclusive_output, lock_path, repair_jsonl_tail
from socialalign_lib.data.checks import check_fields
from socialalign_lib.data.errors import DataFormatError, OutputLockedError, PathLike, TypeSpec
from socialalign_lib.data.hf import features_for, load_dataset_jsonl, load_dataset_parquet, to_dataset
from socialalign_lib.data.read import (
    iter_json_records,
    iter_jsonl,
    iter_jsonl_numbered,
    read_json,
    read_jsonl,
    read_parquet,
    read_text,
)
from socialalign_lib.data.validate import (
    MAX_FIELD_CHARS,
    VALIDATORS,
    guess_kind,
    load_cases,
    load_posts,
    load_responses,
    load_topics,
    load_users,
    validate_case,
    validate_persona,
    validate_post,
    validate_response,
    validate_topic,
    validate_user,
)
from socialalign_lib.data.write import (
    _atomic_write,
    dumps_canonical,
    replace_dir,
    write_json,
    write_jsonl,
    write_parquet,
    write_text,
)
from socialalign_lib.exports import forward_names

__all__ = [
    "DataFormatError",
    "OutputLockedError",
    "TornTail",
    "exclusive_output",
    "lock_path",
    "replace_dir",
    "MAX_FIELD_CHARS",
    "dumps_canonical",
    "write_jsonl",
    "append_jsonl",
    "write_json",
    "write_text",
    "write_parquet",
    "iter_jsonl",
    "iter_jsonl_numbered",
    "read_jsonl",
    "repair_jsonl_tail",
    "read_text",
    "read_json",
    "iter_json_records",
    "read_parquet",
    "check_fields",
    "validate_topic",
    "validate_post",
    "validate_persona",
    "validate_user",
    "validate_response",
    "validate_case",
    "VALIDATORS",
    "guess_kind",
    "load_topics",
    "load_posts",
    "load_users",
    "load_responses",
    "load_cases",
    "features_for",
    "to_dataset",
    "load_dataset_jsonl",
    "load_dataset_parquet",
]
_PUBLIC = (PathLike, TypeSpec, _atomic_write)  # re-exported names used by other modules (not in __all__)

_MODULES = (_errors, _write, _append, _read, _checks, _validate, _hf, _encoding)


__getattr__ = forward_names(__name__, _MODULES)
