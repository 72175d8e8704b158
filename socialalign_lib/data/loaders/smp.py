"""Social-media popularity files (docs/formats.md#smpd-and-tpic2017): SMPD (SMP Challenge), SMHP2018 and TPIC2017
as one DataFrame shape (:data:`SMP_COLUMNS` first), checked row by row.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DataFormatError, PathLike
from ..read import iter_json_records, read_text

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SMP_COLUMNS", "load_smpd", "load_tpic2017"]

SMP_COLUMNS: tuple[str, ...] = (
    "source",
    "split",
    "uid",
    "pid",
    "title",
    "category",
    "subcategory",
    "concept",
    "tags",
    "mediatype",
    "postdate",
    "latitude",
    "longitude",
    "geoaccuracy",
    "image",
    "user_avgview",
    "popularity",
)
"""Columns every popularity loader returns, in this order (dataset-specific extras follow, lower-cased):

``source`` ("SMPD" / "SMHP2018" / "TPIC2017"), ``split``, ``uid`` and ``pid`` (str; ``(uid, pid)`` is the post),
``title``, ``category`` / ``subcategory`` / ``concept`` (str, "" when the dataset has none), ``tags`` (list of
str, from the space-separated ``Alltags``), ``mediatype``, ``postdate`` (Unix seconds, UTC, nullable Int64 —
TPIC gives only a day and a 4-hour bucket, so its value is that bucket's start), ``latitude`` / ``longitude``
(float; Flickr's "0" = none stays 0), ``geoaccuracy`` (Int64), ``image`` (path or URL), ``user_avgview``
(TPIC's USER_META ``avgview``; the world's SMP posts use the same name), ``popularity`` (float label,
log-views; NaN where the split has no labels). Same names as the embedded world's SMP posts.
"""

_SMPD_FILES = {  # part → candidate file names (current naming first, then the older ``*_all_json`` naming)
    "category": ["{s}_category.json"],
    "text": ["{s}_text.json", "{s}_tags.json"],
    "temporal": ["{s}_temporalspatial_information.json", "{s}_temporalspatial.json"],
    "user": ["{s}_user_data.json", "{s}_userdata.json"],
    "additional": ["{s}_additional_information.json", "{s}_additional.json"],
    "image": ["{s}_img_filepath.txt", "{s}_img_path.txt", "{s}_img.txt"],
    "label": [
        "{s}_label.txt",
        "{s}_label.json",
    ],  # .json: [3rd-party] builders expect records with a label key
}
_SMHP_COLUMNS = (
    "uid",
    "pid",
    "category",
    "subcategory",
    "concept",
    "pathalias",
    "ispublic",
    "mediastatus",
    "title",
    "mediatype",
    "alltags",
    "postdate",
    "latitude",
    "geoaccuracy",
    "longitude",
)


def _find(folder: Path, names: Sequence[str], split: str) -> Path | None:
    for n in names:
        p = folder / n.format(s=split)
        if p.exists():
            return p
    return None


def _lines(path: Path) -> list[tuple[int, str]]:
    return [(i, s.strip()) for i, s in enumerate(read_text(path).split("\n"), 1) if s.strip()]


def _read_labels(path: Path) -> list[float]:
    out = []
    for line, s in _lines(path):
        token = s.split()[-1]  # one float per line; TPIC-style "pid uid logview" rows also work
        try:
            out.append(float(token))
        except ValueError:
            raise DataFormatError(f"expected a float label, got {s[:40]!r}", file=path, line=line) from None
    return out


def _read_label_records(path: Path) -> list[float]:
    out = []
    for line, rec in _records(path):
        keys = {k.lower(): k for k in rec}
        key = next((keys[k] for k in ("label", "popularity", "score", "logview") if k in keys), None)
        if key is None:
            raise DataFormatError(
                "missing (expected one of label, popularity, score)", file=path, line=line, field="label"
            )
        value = _num(rec[key], float, path, line, key)
        out.append(math.nan if value is None else value)
    return out


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for line, rec in iter_json_records(path):
        if not isinstance(rec, dict):
            raise DataFormatError(
                f"expected an object per post, got {type(rec).__name__}", file=path, line=line
            )
        out.append((line, rec))
    return out


def _norm_key(k: str) -> str:
    k = k.strip().lower()
    return {"tile": "title"}.get(k, k)


def _num(value: Any, kind: type, path: Path, line: int | None, name: str) -> Any:
    if value is None or (isinstance(value, str) and value.strip() in ("", "None", "null", "nan")):
        return None
    try:
        return kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        raise DataFormatError(
            f"expected a number, got {str(value)[:40]!r}", file=path, line=line, field=name
        ) from None


def _vector(value: Any) -> Any:
    """SMPD's ``user_description`` / ``location_description``: a comma-separated float string → list."""
    if isinstance(value, str) and "," in value:
        try:
            return [float(x) for x in value.split(",") if x.strip()]
        except ValueError:
            return value
    return value


def _finish(rows: list[dict[str, Any]], source: str, split: str) -> pd.DataFrame:
    import pandas as pd

    for r in rows:
        r["source"], r["split"] = source, split
        r.setdefault("tags", [])
        for c in SMP_COLUMNS:
            r.setdefault(
                c, "" if c in ("title", "category", "subcategory", "concept", "mediatype", "image") else None
            )
    df = pd.DataFrame(rows)
    extras = sorted(c for c in df.columns if c not in SMP_COLUMNS)
    df = df[list(SMP_COLUMNS) + extras]
    df["postdate"] = df["postdate"].astype("Int64")
    df["geoaccuracy"] = df["geoaccuracy"].astype("Int64")
    for c in ("latitude", "longitude", "user_avgview", "popularity"):
        df[c] = df[c].astype("float64")
    return df


def load_smpd(folder: PathLike, split: str = "train") -> pd.DataFrame:
    """SMPD (``{split}_category.json``, ``{split}_text.json``, … ``{split}_label.txt``; current or older naming)
    or SMHP2018 (``{split}_data.txt`` + ``{split}_label.txt``) → DataFrame with :data:`SMP_COLUMNS` first.

    The SMPD files are row-aligned (row i is the same post everywhere): the loader checks that every file
    has the same number of rows and, where a file carries ``Uid``/``Pid``, that they agree with the first
    one, naming file, line and field on a mismatch. A split without ``{split}_label.txt`` (test) gets NaN.
    """
    root = Path(folder)
    if (root / f"{split}_data.txt").exists():
        return _load_smhp2018(root, split)
    parts = {name: _find(root, names, split) for name, names in _SMPD_FILES.items()}
    if parts["category"] is None and parts["text"] is None:
        raise DataFormatError(
            f"no SMPD files for split {split!r} (expected {split}_category.json, "
            f"{split}_text.json, … or SMHP2018's {split}_data.txt)",
            file=root,
        )
    n_rows: int | None = None
    rows: list[dict[str, Any]] = []
    first_ids: list[tuple[str, str]] = []
    ref_file: Path | None = None

    def check_len(path: Path, n: int) -> None:
        nonlocal n_rows, rows
        if n_rows is None:
            n_rows = n
            rows = [{} for _ in range(n)]
        elif n != n_rows:
            raise DataFormatError(
                f"{n} rows, but {ref_file.name} has {n_rows}: the files must be row-aligned", file=path
            )

    for part in ("category", "text", "temporal", "additional", "user"):
        path = parts[part]
        if path is None:
            continue
        recs = _records(path)
        check_len(path, len(recs))
        ref_file = ref_file or path
        for i, (line, rec) in enumerate(recs):
            r = {_norm_key(k): v for k, v in rec.items()}
            if "uid" in r and "pid" in r:
                ids = (str(r["uid"]), str(r["pid"]))
                if len(first_ids) <= i:
                    first_ids.append(ids)
                elif ids != first_ids[i]:
                    bad = "uid" if ids[0] != first_ids[i][0] else "pid"
                    raise DataFormatError(
                        f"{bad} {ids[0 if bad == 'uid' else 1]!r} does not match row {i + 1} of "
                        f"{ref_file.name} ({first_ids[i][0 if bad == 'uid' else 1]!r}); the files "
                        "are not row-aligned",
                        file=path,
                        line=line,
                        field=bad.capitalize(),
                    )
            out = rows[i]
            for k, v in r.items():
                if k in ("uid", "pid"):
                    out[k] = str(v)
                elif k == "alltags":
                    out["tags"] = str(v or "").split()
                elif k == "postdate":
                    out["postdate"] = _num(v, int, path, line, "Postdate")
                elif k in ("latitude", "longitude"):
                    out[k] = _num(v, float, path, line, k.capitalize())
                elif k == "geoaccuracy":
                    out[k] = _num(v, int, path, line, "Geoaccuracy")
                elif k in ("user_description", "location_description"):
                    out[k] = _vector(v)
                else:
                    out[k] = "" if v is None else v
    for part, col in (("image", "image"), ("label", "popularity")):
        path = parts[part]
        if path is None:
            continue
        if part == "image":
            values: list[Any] = [s.strip('"') for _, s in _lines(path)]
        else:
            values = _read_label_records(path) if path.suffix == ".json" else _read_labels(path)
        check_len(path, len(values))
        for r, v in zip(rows, values):
            r[col] = v
    return _finish(rows, "SMPD", split)


def _load_smhp2018(root: Path, split: str) -> pd.DataFrame:
    path = root / f"{split}_data.txt"
    rows = []
    for k, (line, s) in enumerate(_lines(path)):
        cells = next(csv.reader([s], delimiter=" ", quotechar='"', skipinitialspace=True))
        if k == 0 and [c.lower() for c in cells[:2]] == ["uid", "pid"]:
            continue  # a header row
        if len(cells) != len(_SMHP_COLUMNS):
            raise DataFormatError(
                f"{len(cells)} columns, expected {len(_SMHP_COLUMNS)} ({' '.join(_SMHP_COLUMNS)})",
                file=path,
                line=line,
            )
        r: dict[str, Any] = dict(zip(_SMHP_COLUMNS, cells))
        r["tags"] = r.pop("alltags").split()
        r["postdate"] = _num(r["postdate"], int, path, line, "postdate")
        r["latitude"] = _num(r["latitude"], float, path, line, "latitude")
        r["longitude"] = _num(r["longitude"], float, path, line, "longitude")
        r["geoaccuracy"] = _num(r["geoaccuracy"], int, path, line, "geoaccuracy")
        r["_line"] = line
        rows.append(r)
    label_path = root / f"{split}_label.txt"
    if label_path.exists():
        labels = _read_labels(label_path)
        if len(labels) != len(rows):
            raise DataFormatError(
                f"{len(labels)} labels for {len(rows)} rows of {path.name}", file=label_path
            )
        for r, v in zip(rows, labels):
            r["popularity"] = v
    for r in rows:
        del r["_line"]
    return _finish(rows, "SMHP2018", split)


def _tsv(path: Path, default_header: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """TPIC's tab-separated files (whitespace accepted too), with or without their header row."""
    out = []
    header = list(default_header)
    for k, (line, s) in enumerate(_lines(path)):
        cells = [c.strip() for c in (s.split("\t") if "\t" in s else s.split())]
        if k == 0 and cells[0].lower() == "pid":
            header = [c.lower() for c in cells]
            continue
        if len(cells) != len(header):
            raise DataFormatError(
                f"{len(cells)} columns, expected {len(header)} ({' '.join(header)})", file=path, line=line
            )
        out.append((line, dict(zip(header, cells))))
    return out


def load_tpic2017(folder: PathLike, split: str = "train") -> pd.DataFrame:
    """TPIC2017 (``LABEL.txt`` ``pid uid logview``, ``USER_META.txt``, ``TIME_FLAG.txt``, optional
    ``PHOTO_URL.txt``) → DataFrame with :data:`SMP_COLUMNS` first, one row per ``LABEL.txt`` row, the other
    files joined on ``(pid, uid)``. ``avgview`` becomes ``user_avgview``; ``postdate`` is the day at the start
    of the ``hour_index`` bucket (0 = 2–6am … 5 = 10pm–2am), taken as UTC."""
    import pandas as pd  # noqa: F401 - make the dependency explicit before doing work

    root = Path(folder)
    label_path = root / "LABEL.txt"
    if not label_path.exists():
        raise DataFormatError("missing LABEL.txt (pid uid logview)", file=root)
    labels = _tsv(label_path, ("pid", "uid", "logview"))
    joined: dict[str, dict[tuple[str, str], tuple[int, dict[str, str]]]] = {}
    for name, header in (
        (
            "USER_META.txt",
            (
                "pid",
                "uid",
                "commentcount",
                "haspeople",
                "titlelen",
                "deslen",
                "tagcount",
                "avgview",
                "groupcount",
                "avgmembercount",
            ),
        ),
        ("TIME_FLAG.txt", ("pid", "uid", "year", "month", "day", "hour_index")),
        ("PHOTO_URL.txt", ("pid", "uid", "url")),
    ):
        if (root / name).exists():
            joined[name] = {(r["pid"], r["uid"]): (ln, r) for ln, r in _tsv(root / name, header)}
    rows = []
    for line, lab in labels:
        key = (lab["pid"], lab["uid"])
        r: dict[str, Any] = {
            "pid": lab["pid"],
            "uid": lab["uid"],
            "popularity": _num(lab.get("logview"), float, label_path, line, "logview"),
        }
        meta = joined.get("USER_META.txt", {}).get(key)
        if meta is not None:
            mline, m = meta
            for k, v in m.items():
                if k not in ("pid", "uid"):
                    r["user_avgview" if k == "avgview" else k] = _num(
                        v, float, root / "USER_META.txt", mline, k
                    )
        tf = joined.get("TIME_FLAG.txt", {}).get(key)
        if tf is not None:
            tline, t = tf
            tpath = root / "TIME_FLAG.txt"
            y, mo, d, h = (
                _num(t.get(k), int, tpath, tline, k) for k in ("year", "month", "day", "hour_index")
            )
            r.update(year=y, month=mo, day=d, hour_index=h)
            if None not in (y, mo, d, h):
                try:
                    start = dt.datetime(y, mo, d, tzinfo=dt.timezone.utc) + dt.timedelta(hours=2 + 4 * h)
                except ValueError as err:
                    raise DataFormatError(
                        f"not a date ({err})", file=tpath, line=tline, field="day"
                    ) from None
                r["postdate"] = int(start.timestamp())
        url = joined.get("PHOTO_URL.txt", {}).get(key)
        if url is not None:
            r["image"] = url[1]["url"]
        rows.append(r)
    return _finish(rows, "TPIC2017", split)
