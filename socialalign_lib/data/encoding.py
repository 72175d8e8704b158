"""THE encoding policy of the library: how bytes from a file become text, and what a failure says.

One rule for every reader (``data.read``, the loaders, the history filter's word lists): decode *strictly* —
never with ``errors="replace"`` — because a wrong guess turns a GB18030 file into mojibake that no later stage can
detect. Chinese exports are often GB18030, modern ones UTF-8, so:

* :func:`decode_text` — bytes in a *named* encoding (``read_text``'s and ``read_jsonl``'s ``encoding=``); a UTF-8
  BOM is dropped; a failure names line and byte and hints at the likely true encoding (GB18030 for Chinese read as
  UTF-8, UTF-8 for Chinese read as GB18030); a file cut mid-character is called truncated; bytes read as GB18030
  that are valid UTF-8 Chinese are refused (GB18030 decodes them without an error, into mojibake).
  ``encoding="auto"`` is :func:`decode_bytes`.
* :func:`decode_bytes` / :func:`read_text_file` — the first of several encodings (default UTF-8 with or without
  BOM, then GB18030; a UTF-16 BOM is honoured) that decodes strictly, else an :class:`EncodingError` naming file,
  line and the byte offset each encoding failed at.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import DataFormatError, PathLike

__all__ = ["EncodingError", "decode_bytes", "decode_text", "read_text_file", "decode_error", "UTF8_NAMES"]

UTF8_NAMES = frozenset({"utf-8", "utf8", "utf_8", "utf-8-sig", "utf_8_sig"})
"""Encoding names read as UTF-8 (a BOM is dropped for each)."""
_GB_NAMES = {"gb18030", "gbk", "gb2312", "cp936", "936", "gb-18030", "gb_18030"}
_CJK = re.compile(r"[\u3400-\u9fff]")


class EncodingError(DataFormatError):
    """A file is neither strict UTF-8 nor GB18030. ``offsets`` maps each tried encoding to the byte offset
    where it failed; ``offset`` is the furthest one (the likeliest true encoding got furthest)."""

    def __init__(
        self,
        problem: str,
        *,
        file: PathLike | None = None,
        line: int | None = None,
        offset: int | None = None,
        offsets: Mapping[str, int] | None = None,
    ) -> None:
        self.offset = offset
        self.offsets = dict(offsets or {})
        super().__init__(problem, file=file, line=line)

    def __reduce__(self):
        return (_rebuild_encoding_error, (self.problem, self.file, self.line, self.offset, self.offsets))


def _rebuild_encoding_error(
    problem: str, file: str | None, line: int | None, offset: int | None, offsets: dict[str, int]
) -> EncodingError:
    return EncodingError(problem, file=file, line=line, offset=offset, offsets=offsets)


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _utf8_or_empty(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return ""


# ------------------------------------------------------------------------------------ several encodings


def decode_bytes(
    data: bytes, path_for_errors: PathLike | None = None, encodings: Sequence[str] = ("utf-8", "gb18030")
) -> str:
    """Bytes → text: the first of ``encodings`` that decodes *strictly* (UTF-8 after dropping a BOM).

    A UTF-16 BOM is honoured too (Excel's "Unicode text"). Nothing is ever decoded with ``errors="replace"``:
    a wrong guess would turn a GB18030 file into mojibake that later stages cannot detect. If no encoding
    works, :class:`EncodingError` names the file, the line and the byte offset each encoding failed at.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass  # not really UTF-16: let the listed encodings try
    offsets: dict[str, int] = {}
    for enc in encodings:
        is_utf8 = codecs.lookup(enc).name in ("utf-8", "utf-8-sig")
        skip = len(codecs.BOM_UTF8) if (is_utf8 and data.startswith(codecs.BOM_UTF8)) else 0
        try:
            return data[skip:].decode("utf-8" if is_utf8 else enc)
        except UnicodeDecodeError as err:
            offsets[enc] = skip + err.start
    where = max(offsets.values()) if offsets else 0
    tried = ", ".join(
        f"{enc} fails at byte {off} (0x{data[off : off + 2].hex()})" for enc, off in offsets.items()
    )
    cut = next(
        (
            enc
            for enc, off in offsets.items()
            if len(data) - off <= 3 and b"\n" not in data[off:] and _decodes(data[:off], enc)
        ),
        None,
    )
    hint = (
        (
            f"; as {cut} only the last {len(data) - offsets[cut]} byte(s) fail: the file ends mid-character, it "
            "looks truncated (an interrupted download or copy)"
        )
        if cut
        else ""
    )
    raise EncodingError(
        f"cannot decode as {' or '.join(encodings)}: {tried}{hint}",
        file=path_for_errors,
        line=data.count(b"\n", 0, where) + 1,
        offset=where,
        offsets=offsets,
    )


def read_text_file(path: PathLike, encodings: Sequence[str] = ("utf-8", "gb18030")) -> str:
    """A whole text file decoded by :func:`decode_bytes` (line endings untouched, as ``read_text``)."""
    p = Path(path)
    return decode_bytes(p.read_bytes(), p, encodings)


# ------------------------------------------------------------------------------------ one named encoding


def decode_error(
    err: UnicodeDecodeError,
    raw: bytes,
    encoding: str,
    file: Path,
    line: int | None,
    base_offset: int,
    at_end: bool = False,
) -> DataFormatError:
    """Name the first bad byte and hint at the likely true encoding: GB18030 for a Chinese file read as UTF-8
    (Windows exports, older Weibo dumps), UTF-8 for one read as GB18030 (modern exports, the crawlers).
    ``raw`` is the line that failed, ``base_offset`` where it starts in the file. ``at_end``: the bad bytes are
    the file's last ones, so the file was most likely cut mid-character."""
    bad = raw[err.start : err.start + 1]
    problem = (
        f"not {'UTF-8' if encoding.lower() in UTF8_NAMES else encoding} "
        f"(byte 0x{bad.hex()} at offset {base_offset + err.start})"
    )
    if at_end:
        problem += "; the file ends mid-character: it looks truncated (an interrupted download or copy)"
    elif encoding.lower() in UTF8_NAMES:
        try:
            as_gb = raw.decode("gb18030")
        except UnicodeDecodeError:
            as_gb = ""
        if _CJK.search(as_gb):
            problem += '; it looks like GB18030: pass encoding="gb18030"'
    elif encoding.lower() in _GB_NAMES and _CJK.search(_utf8_or_empty(raw)):
        problem += '; it looks like UTF-8: pass encoding="utf-8"'
    return DataFormatError(problem, file=file, line=line)


def decode_text(raw: bytes, path: Path, encoding: str = "utf-8") -> str:
    """The bytes of the file ``path`` as text in ``encoding`` (see the module docstring; ``"auto"``: UTF-8 or
    GB18030 by :func:`decode_bytes`). A leading UTF-8 byte-order mark is dropped."""
    if encoding.lower() == "auto":
        return decode_bytes(raw, path).lstrip("\ufeff")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        line_start = raw.rfind(b"\n", 0, err.start) + 1
        line_end = raw.find(b"\n", err.start)
        line_raw = raw[line_start:] if line_end < 0 else raw[line_start:line_end]
        sub = UnicodeDecodeError(
            err.encoding, line_raw, err.start - line_start, err.end - line_start, err.reason
        )
        at_end = line_end < 0 and len(raw) - err.start <= 3 and _decodes(raw[: err.start], encoding)
        raise decode_error(
            sub, line_raw, encoding, path, raw.count(b"\n", 0, err.start) + 1, line_start, at_end=at_end
        ) from None
    if encoding.lower() in _GB_NAMES and not raw.isascii() and _CJK.search(_utf8_or_empty(raw)):
        first = next(i for i, b in enumerate(raw) if b >= 0x80)
        raise DataFormatError(
            f"read as {encoding} but the bytes are valid UTF-8 (first non-ASCII byte at offset "
            f"{first}): decoding them as {encoding} gives mojibake; it looks like UTF-8: pass "
            'encoding="utf-8"',
            file=path,
            line=raw.count(b"\n", 0, first) + 1,
        )
    return text.lstrip("\ufeff")
