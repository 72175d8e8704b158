"""Whole-file writers that never leave half a file (docs/design.md#errors-and-storage).

Every writer here (:func:`write_jsonl`, :func:`write_json`, :func:`write_text`, :func:`write_parquet`) writes a
temp file in the target's folder, fsyncs it and ``os.replace``-s it over the target: a reader (or a crash) sees
the old file or the new one, never half of each, and a record that cannot be serialised leaves the old file
untouched and no temp file behind. JSON is written in one canonical form (:func:`dumps_canonical`: UTF-8,
``ensure_ascii=False``, sorted keys, compact separators, ``\\n`` line ends, no NaN), so the same records give the
same bytes and a seeded world is byte-identical run after run. :func:`replace_dir` does the same for a folder.
Appending to a resumable file is ``data.append``'s job.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .errors import DataFormatError, PathLike

__all__ = ["replace_dir", "dumps_canonical", "write_jsonl", "write_json", "write_text", "write_parquet"]


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
    return json.dumps(
        obj,
        ensure_ascii=False,
        sort_keys=sort_keys,
        separators=separators,
        indent=indent,
        allow_nan=False,
        default=_json_default,
    )


def _as_record(obj: Any) -> Any:
    return obj.to_dict() if is_dataclass(obj) and hasattr(obj, "to_dict") else obj


def _line_bytes(record: Any, sort_keys: bool, path: Path, index: int) -> bytes:
    try:
        return (dumps_canonical(_as_record(record), sort_keys=sort_keys) + "\n").encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as err:  # not serialisable / NaN / lone surrogate
        raise DataFormatError(
            f"record {index} cannot be written as JSON ({err})", file=path, line=index + 1
        ) from err


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
