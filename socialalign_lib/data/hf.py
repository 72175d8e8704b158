"""Schema records as ``datasets.Dataset`` (and Parquet back to one), with explicit, schema-derived features.

:func:`to_dataset` / :func:`load_dataset_jsonl` give a ``datasets.Dataset`` with nested fields kept nested, typed
by :func:`features_for` so that columns that happen to be all ``None`` in one file still get their real type.
The features are read from the record dataclasses (``data.schema.record_fields``), not restated here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import is_dataclass
from typing import TYPE_CHECKING, Any

from .errors import DataFormatError, PathLike
from .read import iter_jsonl_numbered
from .schema import RECORD_TYPES, Case, FieldInfo, record_fields
from .validate import VALIDATORS, guess_kind
from .write import _as_record

if TYPE_CHECKING:
    import datasets

__all__ = ["features_for", "to_dataset", "load_dataset_jsonl", "load_dataset_parquet"]

_NOT_COLUMNS: dict[type, tuple[str, ...]] = {Case: ("record_parts",)}
"""Fields that are no column: ``Case.to_dict`` writes ``record_parts`` only when it is set, and a feature that
some rows lack is refused by ``datasets``; a dataset of cases is typed without it."""


def _value(t: type, *, inside: type | None) -> Any:
    from datasets import Value

    if is_dataclass(t):
        return _struct(t, inside=inside)
    if t is list:
        raise TypeError("a list field needs its item type (list[str], list[Post])")
    return Value({str: "string", int: "int64", float: "float64"}[t])


def _feature(f: FieldInfo, *, inside: type | None) -> Any:
    from datasets import List

    if f.type is list:
        return List(_value(f.item, inside=inside))
    return _value(f.type, inside=inside)


def _struct(cls: type, *, inside: type | None = None) -> dict[str, Any]:
    """The features of one record. A field holding the record's own type (``Post.retweet``: a repost's
    original) nests one level deep, as on Weibo (a repost of a repost points at the root post): inside the
    nested copy it is ``null``. Such fields come after the others."""
    from datasets import Value

    own: dict[str, Any] = {}
    recursive: dict[str, Any] = {}
    for f in record_fields(cls):
        if f.name in _NOT_COLUMNS.get(cls, ()):
            continue
        if f.type is cls:
            recursive[f.name] = Value("null") if inside is cls else _struct(cls, inside=cls)
        else:
            own[f.name] = _feature(f, inside=None)
    return {**own, **recursive}


def features_for(kind: str) -> datasets.Features:
    """Explicit ``datasets.Features`` for a schema record kind (topic, post, persona, user, response, case).

    Inference alone types an all-``None`` column as ``null`` (e.g. ``persona`` before personas exist), and
    two files then refuse to concatenate. A retweet nests one level deep, as on Weibo (a repost of a repost
    points at the root post).
    """
    from datasets import Features

    if kind not in RECORD_TYPES:
        raise ValueError(f"unknown record kind {kind!r}; choose one of {sorted(RECORD_TYPES)}")
    return Features(_struct(RECORD_TYPES[kind]))


def to_dataset(
    records: Iterable[Any], *, kind: str | None = None, features: datasets.Features | None = None
) -> datasets.Dataset:
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


def load_dataset_jsonl(
    path: PathLike, *, validate: str | Callable[..., Any] | None = "auto", encoding: str = "utf-8"
) -> datasets.Dataset:
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
