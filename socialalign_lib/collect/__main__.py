"""``python -m socialalign_lib.collect --hashtag 话题 [--hashtag …] [--user UID …] --out-dir DIR``

Crawls the live site by default (set ``WEIBO_COOKIE`` in the environment; it is never printed), or any
server speaking the same API with ``--base-url``. Re-running the same command resumes from the checkpoint.

Exit status: 0 done; 1 some hashtags or users failed (rerun to retry them); 2 bad options, cookie or output
folder; 3 the --max-requests budget is used up; 4 cookie expired / login required; 5 banned (--max-bans answers
of 418 or a captcha page in a row); 6 another crawl is writing to the output folder; 130 interrupted (Ctrl-C).
After 1, 3, 4, 5 and 130 the same command resumes where the crawl stopped; nothing collected is lost.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .client import CrawlBanned, CrawlStopped, LoginRequired
from .config import CrawlConfig
from .crawler import Crawler, CrawlSummary
from .store import OutputLocked

EXIT_FAILED, EXIT_USAGE, EXIT_BUDGET, EXIT_LOGIN, EXIT_BANNED, EXIT_LOCKED, EXIT_INTERRUPTED = (
    1,
    2,
    3,
    4,
    5,
    6,
    130,
)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m socialalign_lib.collect",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = CrawlConfig(cookie=None)
    ap.add_argument(
        "--hashtag", action="append", default=[], help="a hashtag, with or without the '#' (repeatable)"
    )
    ap.add_argument(
        "--user", action="append", default=[], help="a user id whose timeline to crawl (repeatable)"
    )
    ap.add_argument("--out-dir", default=str(d.out_dir))
    ap.add_argument("--base-url", default=d.base_url)
    ap.add_argument(
        "--rate",
        type=float,
        default=d.rate_per_s,
        help="requests per second (0 = unlimited, only for a server on this machine such as the mock)",
    )
    ap.add_argument("--timeout", type=float, default=d.timeout_s)
    ap.add_argument("--retries", type=int, default=d.retries)
    ap.add_argument("--backoff-base", type=float, default=d.backoff_base_s)
    ap.add_argument("--backoff-max", type=float, default=d.backoff_max_s)
    ap.add_argument(
        "--max-requests", type=int, default=None, help="stop (resumably) after this many requests"
    )
    ap.add_argument(
        "--max-bans",
        type=int,
        default=d.max_consecutive_bans,
        help="stop after this many 418 / captcha answers in a row (a ban outlasts any retry)",
    )
    ap.add_argument(
        "--end-confirmations",
        type=int,
        default=d.end_confirmations,
        help="ask an 'ok: 0 / nothing here' page again this often before it ends a listing",
    )
    ap.add_argument("--max-users", type=int, default=None)
    ap.add_argument("--since", default=None, help="ISO date; older timeline posts are not collected")
    ap.add_argument("--no-users", action="store_true", help="hashtags and comments only")
    ap.add_argument("--no-resume", action="store_true", help="start the output folder over")
    ap.add_argument("--no-fsync", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap


def _print_summary(summary: CrawlSummary) -> None:
    print(
        json.dumps(
            {
                "topics": summary.topics,
                "posts": summary.posts,
                "comments": summary.comments,
                "users": summary.users,
                "failed": summary.failed,
                "stopped": summary.stopped,
                **summary.stats.summary(),
            },
            ensure_ascii=False,
        )
    )


def _stop_message(stop: CrawlStopped, cfg: CrawlConfig) -> tuple[str, int]:
    """What to tell the user, and the exit status, when the crawl had to stop early."""
    saved = (
        f"Everything collected so far is saved in {cfg.out_dir} and the unit in progress is still pending: "
        "rerun the same command to resume."
    )
    if isinstance(stop, LoginRequired):
        return (
            f"cookie expired / login required ({stop}). Log in at https://m.weibo.cn in a browser, put the fresh "
            f"cookie in WEIBO_COOKIE, then resume. {saved}"
        ), EXIT_LOGIN
    if isinstance(stop, CrawlBanned):
        return (
            f"stopped: banned by the site ({stop}). Wait an hour or more (open m.weibo.cn in a browser and pass "
            f"the check if it shows one), and consider a lower --rate, then resume. {saved}"
        ), EXIT_BANNED
    return f"stopped: {stop}. {saved} (raise or drop --max-requests to go further).", EXIT_BUDGET


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not (args.hashtag or args.user):
        ap.error("give at least one --hashtag or --user")

    def fail(message: str, status: int) -> int:
        print(f"collect: {message}", file=sys.stderr)
        return status

    try:
        cfg = CrawlConfig(
            base_url=args.base_url,
            out_dir=args.out_dir,
            rate_per_s=args.rate or None,
            timeout_s=args.timeout,
            retries=args.retries,
            backoff_base_s=args.backoff_base,
            backoff_max_s=args.backoff_max,
            max_requests=args.max_requests,
            max_consecutive_bans=args.max_bans,
            end_confirmations=args.end_confirmations,
            max_users=args.max_users,
            since=args.since,
            crawl_users=not args.no_users,
            resume=not args.no_resume,
            fsync=not args.no_fsync,
            progress=not args.no_progress,
        )
        crawler = Crawler(cfg)
    except OutputLocked as err:
        return fail(f"error: {err}", EXIT_LOCKED)
    except (
        ValueError
    ) as err:  # the cookie, --rate 0 against the live site, an output folder that is not a crawl
        return fail(f"error: {err}", EXIT_USAGE)
    try:
        summary = crawler.run(args.hashtag, args.user)
    except CrawlStopped as stop:
        _print_summary(stop.summary)
        message, status = _stop_message(stop, cfg)
        return fail(message, status)
    except KeyboardInterrupt:
        return fail(
            f"interrupted; everything collected so far is saved in {cfg.out_dir}: rerun the same command to "
            "resume",
            EXIT_INTERRUPTED,
        )
    finally:
        crawler.close()
    _print_summary(summary)
    if summary.failed:
        return fail(
            f"{len(summary.failed)} unit(s) left for a later run ({', '.join(summary.failed[:5])}"
            f"{', …' if len(summary.failed) > 5 else ''}): rerun the same command to retry them",
            EXIT_FAILED,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
