"""How a crawl went: checked against the world the mock served, and drawn as a figure.

The world is the truth the crawler never sees; comparing field by field is what shows that HTML, display
counts, relative times, long-text cut-offs and injected faults cost nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt

from socialalign_lib.data.schema import Post

from .client import ClientStats
from .mock import MockWeiboServer
from .store import CrawlData


@dataclass
class Comparison:
    """Per record kind: how many crawled records equal the truth, differ, are missing or extra."""

    counts: dict[str, dict[str, int]]
    mismatches: list[str] = field(default_factory=list)  # the first few, "kind id: field crawled != true"

    @property
    def perfect(self) -> bool:
        return all(c["differ"] == c["missing"] == c["extra"] == 0 for c in self.counts.values())

    def table(self) -> dict[str, dict[str, int]]:
        return self.counts


def _diff(kind: str, key: str, got: dict[str, Any], want: dict[str, Any], out: list[str], limit: int) -> bool:
    if got == want:
        return False
    if len(out) < limit:
        fields = [k for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)]
        out.append(
            f"{kind} {key}: " + "; ".join(f"{k}={got.get(k)!r} != {want.get(k)!r}" for k in fields[:3])
        )
    return True


def compare_with_world(data: CrawlData, world: Any, limit: int = 10) -> Comparison:
    """Compare a crawl of ``MockWeiboServer(world)`` with the world, restricted to the hashtags crawled.

    Truth per kind: topics (news, category, time) by hashtag; posts = each topic's lead post and replies;
    comments = the replies as comments of the lead post; users = the world's users that were crawled, plus
    every non-verified author or commenter of the crawled topics that should have been.
    """
    by_tag = {t.hashtag: t for t in world.topics}
    replies: dict[str, list[Post]] = {}
    for r in world.responses:
        replies.setdefault(r.topic_id, []).append(r.post)
    counts = {
        k: Counter({"equal": 0, "differ": 0, "missing": 0, "extra": 0})
        for k in ("topics", "posts", "comments", "users")
    }
    notes: list[str] = []

    true_posts: dict[tuple[str, str], Post] = {}
    true_comments: dict[str, Post] = {}
    expected_users: set[str] = set()
    for topic in data.topics:
        t = by_tag.get(topic.hashtag)
        if t is None:
            counts["topics"]["extra"] += 1
            continue
        got = {"news": topic.news, "category": topic.category, "time": topic.time}
        want = {"news": t.news, "category": t.category, "time": t.time}
        counts["topics"]["differ" if _diff("topic", topic.hashtag, got, want, notes, limit) else "equal"] += 1
        rs = replies.get(t.topic_id, [])
        lead = MockWeiboServer.lead_post(t, len(rs))
        for p in [lead, *rs]:
            true_posts[(topic.topic_id, p.post_id)] = p
        for p in rs:
            true_comments[f"{p.post_id}c"] = MockWeiboServer.comment_of(p)
            expected_users.add(p.user_id)

    def check(kind: str, got: dict[Any, Post], want: dict[Any, Post]) -> None:
        for key, post in got.items():
            if key not in want:
                counts[kind]["extra"] += 1
            else:
                differ = _diff(kind[:-1], str(key), post.to_dict(), want[key].to_dict(), notes, limit)
                counts[kind]["differ" if differ else "equal"] += 1
        counts[kind]["missing"] += len(set(want) - set(got))

    check("posts", {(tid, p.post_id): p for tid, p in data.posts}, true_posts)
    check("comments", {c.post_id: c for _, _, c in data.comments}, true_comments)
    world_users = {u.user_id: u for u in world.users}
    for user in data.users:
        if user.user_id not in world_users:
            counts["users"]["extra"] += 1
            continue
        differ = _diff(
            "user", user.user_id, user.to_dict(), world_users[user.user_id].to_dict(), notes, limit
        )
        counts["users"]["differ" if differ else "equal"] += 1
    counts["users"]["missing"] += len(expected_users - {u.user_id for u in data.users})
    return Comparison({k: dict(v) for k, v in counts.items()}, notes)


def plot_crawl_stats(stats: ClientStats, title: str = "Crawl requests by outcome") -> plt.Figure:
    """Left: failed attempts per endpoint, stacked by cause (each was retried). Right: all outcomes, log scale."""
    endpoints = sorted({e for e, _ in stats.events})
    failures = sorted({o for _, o in stats.events if o != "200"})
    per = Counter(stats.events)
    palette = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 2]  # green is kept for success
    colors = {"200": "#2ca02c", **{o: palette[i % len(palette)] for i, o in enumerate(failures)}}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    bottom = [0] * len(endpoints)
    for o in failures:
        vals = [per[(e, o)] for e in endpoints]
        ax1.bar(endpoints, vals, bottom=bottom, color=colors[o], label=o)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    for i, e in enumerate(endpoints):
        ax1.annotate(f"{per[(e, '200')]} ok", (i, bottom[i]), ha="center", va="bottom", fontsize=7)
    ax1.set_ylabel("failed HTTP attempts")
    ax1.set_xlabel("endpoint")
    ax1.set_title(title)
    if failures:
        ax1.legend(fontsize=8, title="cause", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    outcomes = ["200", *failures] if per else []
    ax2.barh(outcomes, [stats.outcomes[o] for o in outcomes], color=[colors[o] for o in outcomes])
    ax2.invert_yaxis()
    ax2.set_xscale("log")
    ax2.set_xlabel("HTTP attempts (log scale)")
    ax2.set_title(
        f"{stats.requests} attempts, {stats.retries} retries, {stats.gave_up} given up", fontsize=10
    )
    fig.tight_layout()
    return fig
