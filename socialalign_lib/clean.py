"""Deprecated import path: use socialalign_lib.data.text, .encoding and .history.

``clean`` was split by job: the text rules and THE hashtag pattern (``data.text``), the encoding policy
(``data.encoding``: ``decode_bytes``, ``read_text_file``, ``EncodingError``) and the history-post filter
(``data.history``). Every old name still imports from here; a name not listed below is looked up in those modules.
"""

from __future__ import annotations

from socialalign_lib.data import encoding as _encoding
from socialalign_lib.data import history as _history
from socialalign_lib.data import text as _text
from socialalign_lib.data.encoding import EncodingError, decode_bytes, read_text_file
from socialalign_lib.data.history import (
    HistoryFilter,
    HistoryResult,
    filter_history,
    load_history_filter_lists,
)
from socialalign_lib.data.text import (
    HASHTAG,
    WEIBO_EMOJI_NAMES,
    CleanConfig,
    clean_text,
    extract_hashtags,
    has_words,
    html_to_text,
    is_only_hashtags,
    strip_hashtags,
)
from socialalign_lib.exports import forward_names

__all__ = [
    "CleanConfig",
    "clean_text",
    "extract_hashtags",
    "html_to_text",
    "is_only_hashtags",
    "WEIBO_EMOJI_NAMES",
    "HASHTAG",
    "strip_hashtags",
    "has_words",
    "EncodingError",
    "decode_bytes",
    "read_text_file",
    "HistoryFilter",
    "HistoryResult",
    "filter_history",
    "load_history_filter_lists",
]

_MODULES = (_text, _encoding, _history)


__getattr__ = forward_names(__name__, _MODULES)
