"""Deprecated import path: use socialalign_lib.data.loaders (one module per format).

Every old name still imports from here: the public ones from ``data.loaders``; a name not listed below (a private
helper) is looked up in its format modules.
"""

from __future__ import annotations

import socialalign_lib.data.loaders._common as _common
import socialalign_lib.data.loaders.lamp as _lamp
import socialalign_lib.data.loaders.popalm as _popalm
import socialalign_lib.data.loaders.smp as _smp
import socialalign_lib.data.loaders.socialalign as _socialalign
import socialalign_lib.data.loaders.weibo as _weibo
from socialalign_lib.data.loaders import (
    LAMP_PREFIXES,
    SMP_COLUMNS,
    PopalmPair,
    PopalmThread,
    PostsCsv,
    SocialAlignRecord,
    day_from_filename,
    extract_hashtags,
    load_daily_posts,
    load_lamp,
    load_popalm_pairs,
    load_popalm_sft,
    load_posts_csv,
    load_smpd,
    load_socialalign_alpaca,
    load_socialalign_cases,
    load_tpic2017,
    load_weibo_crawler_csv,
    load_weibo_crawler_dir,
    load_weibo_crawler_json,
    load_weibo_search_csv,
    parse_count,
    parse_persona_text,
    parse_socialalign_instruction,
    parse_weibo_time,
    popalm_to_schema,
)
from socialalign_lib.data.loaders.weibo import _need
from socialalign_lib.data.read import iter_csv_rows as _csv_rows
from socialalign_lib.exports import forward_names

__all__ = [
    "parse_count",
    "parse_weibo_time",
    "extract_hashtags",
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
_PUBLIC = (parse_persona_text, _csv_rows, _need)  # re-exported names used by other modules (not in __all__)

_MODULES = (_common, _socialalign, _weibo, _lamp, _smp, _popalm)


__getattr__ = forward_names(__name__, _MODULES)
