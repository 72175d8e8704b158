"""Solutions to the exercises of notebook 01 (collecting Weibo). Each function returns its answer."""

from __future__ import annotations

import re
import tempfile
from decimal import Decimal
from pathlib import Path

from socialalign_lib.collect import CrawlConfig, FaultConfig, MockWeiboServer, crawl, load_crawl
from socialalign_lib.collect.report import compare_with_world
from socialalign_lib.world import generate_world

#: The notebook's fast settings against the mock (no rate limit, millisecond backoffs, short timeout).
FAST = dict(
    rate_per_s=None, timeout_s=0.2, backoff_base_s=0.002, backoff_max_s=0.02, resume=False, progress=False
)


def _crawl(world, hashtags, fault_rate: float, retries: int, seed: int) -> dict[str, object]:
    faults = FaultConfig(rate=fault_rate, retry_after_s=0, slow_s=0.5, seed=seed)
    with tempfile.TemporaryDirectory() as tmp, MockWeiboServer(world, faults) as srv:
        summary = crawl(
            CrawlConfig(base_url=srv.base_url, out_dir=Path(tmp), retries=retries, **FAST), hashtags
        )
        comparison = compare_with_world(load_crawl(Path(tmp)), world)
        return {
            "requests": summary.stats.requests,
            "retries": summary.stats.retries,
            "units left undone": len(summary.failed),
            "topics": summary.topics,
            "posts": summary.posts,
            "users": summary.users,
            "collected records equal the world's": comparison.perfect,
        }


def ex1_fault_rate(size: str = "tiny", seed: int = 0, n_hashtags: int = 1) -> dict[float, dict[str, object]]:
    """Exercise 1 (predict): raise ``fault_rate`` from 0 to 0.3 to 0.6. How many requests does the crawl need, and is
    the result still equal to the world? (More requests, through retries; still equal: with 5 retries and at most 3
    faults in a row per URL, every page gets through.)"""
    world = generate_world(size=size, seed=seed)
    hashtags = [t.hashtag for t in world.topics[:n_hashtags]]
    return {rate: _crawl(world, hashtags, rate, retries=5, seed=seed) for rate in (0.0, 0.3, 0.6)}


def ex2_no_retries(size: str = "tiny", seed: int = 0, n_hashtags: int = 1) -> dict[str, object]:
    """Exercise 2 (predict): the same crawl with ``retries=0`` at fault rate 0.3. (The crawl does not crash: it
    lists the units it could not fetch in ``summary.failed`` and collects fewer records; what it did collect still
    equals the world — ``compare_with_world`` checks the records present, so count what is missing too. A later
    run with ``resume=True`` picks the failed units up.)"""
    world = generate_world(size=size, seed=seed)
    hashtags = [t.hashtag for t in world.topics[:n_hashtags]]
    return _crawl(world, hashtags, 0.3, retries=0, seed=seed)


_UNITS = {"": 1, "万": 10_000, "亿": 100_000_000}
_LABELS = {"", "转发", "评论", "赞", "点赞", "-"}  # what Weibo shows instead of a zero count


def my_parse_count(value) -> int:
    """Exercise 3 (implement): a Weibo count as an int: 551894, "1.2万", "4.0824万", "100万+", "3亿", "1,234",
    "赞" (a button label: zero), None (zero). Decimal, not float: 4.0824 * 10000 in floats is 40823.99…"""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text in _LABELS:
        return 0
    m = re.fullmatch(r"([0-9][0-9,]*(?:\.[0-9]+)?)\s*([万亿]?)\s*\+?", text)
    if m is None:
        raise ValueError(f"unreadable count {value!r}")
    return int(Decimal(m.group(1).replace(",", "")) * _UNITS[m.group(2)])


def ex3_parse_count(size: str = "tiny", seed: int = 0) -> dict[str, int]:
    """Exercise 3: :func:`my_parse_count` on the display strings the notebook shows."""
    return {
        text: my_parse_count(text) for text in ("551894", "1.2万", "4.0824万", "100万+", "3亿", "1,234", "赞")
    }
