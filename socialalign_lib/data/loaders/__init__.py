"""Loaders for the real data formats (docs/formats.md), mapped onto the shared schema — one module per format.

The embedded world is the default; these are for users who bring real files:

* ``socialalign`` — the official SocialAlign Alpaca JSON (records taken apart into cases, parts kept verbatim);
* ``weibo`` — the weibo-crawler user JSON / CSV, weibo-search CSV, and ``userid,text`` post CSVs (GB18030 too),
  one file or one per day;
* ``lamp`` — LaMP questions + outputs;
* ``smp`` — SMPD / SMHP2018 / TPIC2017 popularity files;
* ``popalm`` — PopALM's JSON Lines.

Each loader checks what it reads and raises :class:`~socialalign_lib.data.errors.DataFormatError` naming file, line
and field, because a real dump that is wrong in row 48 213 is otherwise found three notebooks later as a NaN.
Loaders change text only where the format demands it (e.g. the crawler's ``"\\t"`` after ids); cleaning is
``data.text``'s job. Hashtags inside text (``#…#``) come from ``data.text.extract_hashtags``, the library's one
hashtag rule; persona blocks from ``data.persona_text.parse_persona_text``, its one persona parser. Count strings
and Weibo times are read by the crawler's own :func:`parse_count` and :func:`parse_weibo_time`, re-exported here.
"""

from __future__ import annotations

from socialalign_lib.collect.parse import parse_count, parse_weibo_time

from ..persona_text import parse_persona_text
from ..text import extract_hashtags
from .lamp import LAMP_PREFIXES, load_lamp
from .popalm import PopalmPair, PopalmThread, load_popalm_pairs, load_popalm_sft, popalm_to_schema
from .smp import SMP_COLUMNS, load_smpd, load_tpic2017
from .socialalign import (
    SocialAlignRecord,
    load_socialalign_alpaca,
    load_socialalign_cases,
    parse_socialalign_instruction,
)
from .weibo import (
    PostsCsv,
    day_from_filename,
    load_daily_posts,
    load_posts_csv,
    load_weibo_crawler_csv,
    load_weibo_crawler_dir,
    load_weibo_crawler_json,
    load_weibo_search_csv,
)

__all__ = [
    "parse_count",
    "parse_weibo_time",
    "extract_hashtags",
    "parse_persona_text",
    "SocialAlignRecord",
    "parse_socialalign_instruction",
    "load_socialalign_alpaca",
    "load_socialalign_cases",
    "load_weibo_crawler_json",
    "load_weibo_crawler_dir",
    "load_weibo_crawler_csv",
    "load_weibo_search_csv",
    "PostsCsv",
    "load_posts_csv",
    "load_daily_posts",
    "day_from_filename",
    "LAMP_PREFIXES",
    "load_lamp",
    "SMP_COLUMNS",
    "load_smpd",
    "load_tpic2017",
    "PopalmThread",
    "PopalmPair",
    "load_popalm_sft",
    "load_popalm_pairs",
    "popalm_to_schema",
]
