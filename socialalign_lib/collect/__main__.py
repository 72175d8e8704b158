"""``python -m socialalign_lib.collect --hashtag 话题 [--hashtag …] [--user UID …] --out-dir DIR``

Crawls the live site by default (set ``WEIBO_COOKIE`` in the environment; it is never printed), or any
server speaking the same API with ``--base-url``. Re-running the same command resumes from the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .config import CrawlConfig
from .crawler import crawl


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m socialalign_lib.collect", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    d = CrawlConfig(cookie=None)
    ap.add_argument("--hashtag", action="append", default=[], help="a hashtag, with or without the '#' (repeatable)")
    ap.add_argument("--user", action="append", default=[], help="a user id whose timeline to crawl (repeatable)")
    ap.add_argument("--out-dir", default=str(d.out_dir))
    ap.add_argument("--base-url", default=d.base_url)
    ap.add_argument("--rate", type=float, default=d.rate_per_s, help="requests per second (0 = unlimited, mock only)")
    ap.add_argument("--timeout", type=float, default=d.timeout_s)
    ap.add_argument("--retries", type=int, default=d.retries)
    ap.add_argument("--backoff-base", type=float, default=d.backoff_base_s)
    ap.add_argument("--backoff-max", type=float, default=d.backoff_max_s)
    ap.add_argument("--max-requests", type=int, default=None)
    ap.add_argument("--max-users", type=int, default=None)
    ap.add_argument("--since", default=None, help="ISO date; older timeline posts are not collected")
    ap.add_argument("--no-users", action="store_true", help="hashtags and comments only")
    ap.add_argument("--no-resume", action="store_true", help="start the output folder over")
    ap.add_argument("--no-fsync", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg = CrawlConfig(base_url=args.base_url, out_dir=args.out_dir, rate_per_s=args.rate or None, timeout_s=args.timeout,
                      retries=args.retries, backoff_base_s=args.backoff_base, backoff_max_s=args.backoff_max,
                      max_requests=args.max_requests, max_users=args.max_users, since=args.since,
                      crawl_users=not args.no_users, resume=not args.no_resume, fsync=not args.no_fsync,
                      progress=not args.no_progress)
    if not (args.hashtag or args.user):
        ap.error("give at least one --hashtag or --user")
    summary = crawl(cfg, args.hashtag, args.user)
    print(json.dumps({"topics": summary.topics, "posts": summary.posts, "comments": summary.comments,
                      "users": summary.users, "failed": summary.failed, **summary.stats.summary()}, ensure_ascii=False))
    return 0 if summary.complete else 1


if __name__ == "__main__":
    sys.exit(main())
