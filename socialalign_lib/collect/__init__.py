"""Collection: a crawler for Weibo's mobile JSON API and a local mock of it (docs/design.md#collection,
docs/formats.md#weibo-mobile-api).

>>> from socialalign_lib.collect import CrawlConfig, FaultConfig, MockWeiboServer, crawl
>>> from socialalign_lib.world import generate_world
>>> world = generate_world(size="tiny", seed=0)
>>> with MockWeiboServer(world, FaultConfig(rate=0.3)) as srv:  # doctest: +SKIP
...     crawl(CrawlConfig(base_url=srv.base_url, rate_per_s=None), [world.topics[0].hashtag])

Live: ``WEIBO_COOKIE=... python -m socialalign_lib.collect --hashtag 话题 --out-dir data/generated/crawl``.
"""

from .client import (
    ApiResponse,
    ClientStats,
    CrawlBanned,
    CrawlStopped,
    FetchError,
    LoginRequired,
    RequestBudgetExhausted,
    WeiboClient,
)
from .config import CrawlConfig
from .crawler import Crawler, CrawlSummary, crawl, topic_id_for
from .mock import (
    FaultConfig,
    MockWeiboServer,
    format_count,
    format_weibo_time,
    render_mblog,
    render_text,
)
from .parse import ParseError, comment_to_post, html_to_text, mblog_to_post, parse_count, parse_weibo_time
from .store import CrawlData, CrawlStore, OutputLocked, load_crawl

__all__ = [
    "ApiResponse",
    "ClientStats",
    "CrawlBanned",
    "CrawlConfig",
    "CrawlData",
    "CrawlStopped",
    "CrawlStore",
    "CrawlSummary",
    "Crawler",
    "FaultConfig",
    "FetchError",
    "LoginRequired",
    "MockWeiboServer",
    "OutputLocked",
    "ParseError",
    "RequestBudgetExhausted",
    "WeiboClient",
    "comment_to_post",
    "crawl",
    "format_count",
    "format_weibo_time",
    "html_to_text",
    "load_crawl",
    "mblog_to_post",
    "parse_count",
    "parse_weibo_time",
    "render_mblog",
    "render_text",
    "topic_id_for",
]
