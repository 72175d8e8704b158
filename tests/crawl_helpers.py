"""Helpers shared by the crawler tests (test_collect.py, test_collect_faults.py): mock-speed settings and the bytes
of a crawl folder."""

from __future__ import annotations

from pathlib import Path

from socialalign_lib.collect import CrawlConfig
from socialalign_lib.collect.store import FILES


def mock_crawl_config(base_url: str, out_dir: Path, timeout_s: float, **kw) -> CrawlConfig:
    """No rate limit, millisecond backoff, no progress bar or fsync; ``kw`` overrides any field."""
    base = dict(
        base_url=base_url,
        out_dir=out_dir,
        cookie=None,
        rate_per_s=None,
        timeout_s=timeout_s,
        backoff_base_s=0.001,
        backoff_max_s=0.005,
        progress=False,
        fsync=False,
    )
    return CrawlConfig(**{**base, **kw})


def crawl_files(out_dir: Path) -> dict[str, bytes]:
    """Every output file of a crawl folder, by name: crawls are compared byte for byte."""
    return {name: (out_dir / f"{name}.jsonl").read_bytes() for name in FILES}
