"""Assemble the embedded world: users with histories, topics with news, replies, truth, SMP posts.

Every entity draws from its own random stream ``default_rng([seed, kind, index])``, so the world is
byte-identical for a seed, larger sizes extend smaller ones entity by entity, and the ``large`` size can be
streamed to disk without holding all replies in memory.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from socialalign_lib.data.schema import SENTIMENTS, Case, Post, Response, Topic, User
from socialalign_lib.data.text import extract_hashtags

from . import compose
from . import lexicon as lx
from .latent import (
    HISTORY_SELECTION,
    LatentTopic,
    LatentUser,
    likes_mu,
    polarity,
    reply_weight,
    sample_topic,
    sample_user,
    sentiment_probs,
)
from .smp import concept_themes, sample_smp_user_posts

EPOCH = dt.datetime(2023, 1, 1, 8, 0, 0)
_USER, _TOPIC, _BG, _REPLY, _HIST, _SPLIT = 1, 2, 3, 4, 5, 6

SIZES: dict[str, dict[str, object]] = {
    "tiny": {
        "n_users": 60,
        "n_topics": 16,
        "n_background_topics": 30,
        "replies_per_topic": 12,
        "history_len": (8, 12),
        "n_smp_users": 40,
    },
    "course": {
        "n_users": 400,
        "n_topics": 60,
        "n_background_topics": 120,
        "replies_per_topic": 30,
        "history_len": (10, 16),
        "n_smp_users": 300,
    },
    "large": {
        "n_users": 8000,
        "n_topics": 1800,
        "n_background_topics": 1500,
        "replies_per_topic": 30,
        "history_len": (10, 16),
        "n_smp_users": 3000,
    },
}


@dataclass
class WorldConfig:
    """Size and seed of the world. ``size`` fills the counts; any count given explicitly wins."""

    size: str = "course"
    seed: int = 0
    labels: tuple[str, ...] = SENTIMENTS
    n_users: int | None = None
    n_topics: int | None = None
    n_background_topics: int | None = None
    replies_per_topic: int | None = None
    history_len: tuple[int, int] | None = None
    n_smp_users: int | None = None
    smp_posts_per_user: tuple[int, int] = (5, 8)
    heldout_topic_frac: float = 0.2
    heldout_user_frac: float = 0.15
    validation_frac: float = 0.08
    junk_rate: float = 0.12
    repost_rate: float = 0.3
    crowd_selection: float = 2.0  # lambda of world/latent.py: 0 = repliers drawn by category interest alone

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"unknown world size {self.size!r}; choose one of {sorted(SIZES)}")
        for k, v in SIZES[self.size].items():
            if getattr(self, k) is None:
                setattr(self, k, v)
        self.labels = tuple(self.labels)
        self.history_len = tuple(self.history_len)  # type: ignore[assignment]
        if len(self.labels) not in (2, 3, 5):
            raise ValueError(
                f"labels must have 2, 3 or 5 classes ordered negative→positive, got {self.labels!r}"
            )


@dataclass
class World:
    """An in-memory world. ``truth`` holds what a real dataset never has: latent personas and p(s|u,t)."""

    config: WorldConfig
    topics: list[Topic]
    users: list[User]
    responses: list[Response]
    latent_users: dict[str, LatentUser]
    latent_topics: dict[str, LatentTopic]
    response_probs: dict[tuple[str, str], list[float]]  # (topic_id, user_id) -> p(s|u,t)
    smp_posts: list[dict] = field(default_factory=list)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.config.labels

    def topic(self, topic_id: str) -> Topic:
        return self._topics_by_id[topic_id]

    def user(self, user_id: str) -> User:
        return self._users_by_id[user_id]

    def __post_init__(self) -> None:
        self._topics_by_id = {t.topic_id: t for t in self.topics}
        self._users_by_id = {u.user_id: u for u in self.users}

    def cases(self, splits: tuple[str, ...] | None = None) -> list[Case]:
        out = []
        for r in self.responses:
            if splits is not None and r.split not in splits:
                continue
            out.append(
                Case(
                    case_id=f"{r.topic_id}-{r.post.user_id}",
                    topic=self.topic(r.topic_id),
                    user=self.user(r.post.user_id),
                    response=r.post,
                    sentiment=r.sentiment,
                    split=r.split,
                )
            )
        return out

    def true_crowd(self) -> dict[str, list[float]]:
        """Per topic: the expected sentiment distribution over the users who replied (mean of p(s|u,t))."""
        acc: dict[str, list[np.ndarray]] = {}
        for (tid, _), p in self.response_probs.items():
            acc.setdefault(tid, []).append(np.asarray(p))
        return {tid: np.mean(ps, axis=0).round(6).tolist() for tid, ps in sorted(acc.items())}

    def empirical_crowd(self) -> dict[str, list[float]]:
        counts: dict[str, np.ndarray] = {}
        for r in self.responses:
            c = counts.setdefault(r.topic_id, np.zeros(len(self.labels)))
            c[self.labels.index(r.sentiment)] += 1
        return {tid: (c / c.sum()).round(6).tolist() for tid, c in sorted(counts.items())}


def _iso(d: dt.datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%S")


def _topic_record(lt: LatentTopic, rng: np.random.Generator, day_offset: int) -> Topic:
    when = EPOCH + dt.timedelta(days=day_offset + lt.day % 360, hours=int(rng.integers(0, 14)))
    return Topic(
        topic_id=lt.topic_id,
        hashtag=compose.hashtag(lt),
        news=compose.news_text(lt, rng),
        category=str(lx.CATEGORIES[lt.category]["name"]),
        time=_iso(when),
    )


def _history(
    cfg: WorldConfig, lu: LatentUser, bg: list[tuple[LatentTopic, Topic]], rng: np.random.Generator
) -> list[Post]:
    """History posts: opinions on background news (reveal stance and style), reposts, daily life, junk."""
    lo, hi = cfg.history_len  # type: ignore[misc]
    n = int(rng.integers(lo, hi + 1))
    # the self-selection of replies: fans, critics and locals post about "their" news (latent.reply_weight)
    weights = np.array(
        [
            reply_weight(lu, lt, cfg.crowd_selection * HISTORY_SELECTION, floor=0.02, opinion_term=False)
            for lt, _ in bg
        ]
    )
    posts: list[Post] = []
    for j in range(n):
        r = rng.random()
        lt, topic = bg[int(rng.choice(len(bg), p=weights / weights.sum()))]
        when = dt.datetime.fromisoformat(topic.time) + dt.timedelta(hours=int(rng.integers(1, 72)))
        pid = f"{lu.user_id}h{j:03d}"
        if r < cfg.junk_rate:
            junk = compose.junk_post(rng)
            posts.append(
                Post(
                    pid,
                    lu.user_id,
                    junk,
                    _iso(when),
                    hashtags=extract_hashtags(junk),
                    screen_name=lu.screen_name,
                )
            )
            continue
        if r < cfg.junk_rate + 0.1:
            posts.append(
                Post(pid, lu.user_id, compose.daily_post(lu, rng), _iso(when), screen_name=lu.screen_name)
            )
            continue
        p = sentiment_probs(lu, lt, cfg.labels)
        s = cfg.labels[int(rng.choice(len(p), p=p))]
        text = compose.reply_text(lu, lt, s, cfg.labels, rng, tag=None)
        if r < cfg.junk_rate + 0.1 + cfg.repost_rate:
            media = str(rng.choice(lx.MEDIA_ACCOUNTS))
            original = Post(
                f"{lt.topic_id}m",
                f"media{lx.MEDIA_ACCOUNTS.index(media)}",
                f"#{topic.hashtag}#{topic.news}",
                topic.time,
                hashtags=[topic.hashtag],
                screen_name=media,
                likes=int(rng.integers(100, 50000)),
            )
            posts.append(
                Post(pid, lu.user_id, text, _iso(when), retweet=original, screen_name=lu.screen_name)
            )
        else:
            with_tag = rng.random() < 0.4
            posts.append(
                Post(
                    pid,
                    lu.user_id,
                    (f"#{topic.hashtag}#" if with_tag else "") + text,
                    _iso(when),
                    hashtags=[topic.hashtag] if with_tag else [],
                    screen_name=lu.screen_name,
                    likes=int(np.expm1(rng.normal(1.0, 0.8)).clip(0)),
                )
            )
    posts.sort(key=lambda p: (p.created_at, p.post_id))
    return posts


def iter_world(cfg: WorldConfig, progress: bool = True) -> Iterator[tuple[str, object]]:
    """Yield ("user", (User, LatentUser)), ("topic", (Topic, LatentTopic, [Response], {user: probs})), ("smp", post).

    The generator form lets ``write_world`` stream a large world to disk.
    """
    seed = cfg.seed
    bg_latent = [
        sample_topic(np.random.default_rng([seed, _BG, i]), i, prefix="b")
        for i in range(cfg.n_background_topics)
    ]
    bg = [
        (lt, _topic_record(lt, np.random.default_rng([seed, _BG, i, 1]), 0)) for i, lt in enumerate(bg_latent)
    ]
    latent_users = [sample_user(np.random.default_rng([seed, _USER, i]), i) for i in range(cfg.n_users)]
    split_rng = np.random.default_rng([seed, _SPLIT])
    heldout_users = set(
        split_rng.choice(
            cfg.n_users, size=int(round(cfg.heldout_user_frac * cfg.n_users)), replace=False
        ).tolist()
    )
    heldout_topics = set(
        split_rng.choice(
            cfg.n_topics, size=max(1, int(round(cfg.heldout_topic_frac * cfg.n_topics))), replace=False
        ).tolist()
    )
    for i, lu in enumerate(tqdm(latent_users, desc="users", disable=not progress)):
        rng = np.random.default_rng([seed, _HIST, i])
        user = User(
            user_id=lu.user_id,
            screen_name=lu.screen_name,
            history=_history(cfg, lu, bg, rng),
            gender=lu.gender,
            location=lu.location,
            description="",
            followers=lu.followers,
        )
        yield "user", (user, lu)
    for ti in tqdm(range(cfg.n_topics), desc="topics", disable=not progress):
        lt = sample_topic(np.random.default_rng([seed, _TOPIC, ti]), ti)
        topic = _topic_record(lt, np.random.default_rng([seed, _TOPIC, ti, 1]), 360)
        rng = np.random.default_rng([seed, _REPLY, ti])
        m = int(min(cfg.n_users, max(3, rng.poisson(cfg.replies_per_topic))))
        w = np.array([reply_weight(lu, lt, cfg.crowd_selection) for lu in latent_users])
        repliers = rng.choice(cfg.n_users, size=m, replace=False, p=w / w.sum())
        start = dt.datetime.fromisoformat(topic.time)
        responses, probs = [], {}
        for rank, ui in enumerate(repliers):
            lu = latent_users[int(ui)]
            p = sentiment_probs(lu, lt, cfg.labels)
            s = cfg.labels[int(rng.choice(len(p), p=p))]
            text = compose.reply_text(lu, lt, s, cfg.labels, rng, tag=topic.hashtag)
            has_emoji = any(e in text for es in lx.EMOJI.values() for e in es)
            mu = likes_mu(
                lt.heat,
                lu.followers,
                polarity(s, cfg.labels),
                lu.personality,
                has_emoji,
                lu.length_class,
                rank,
            )
            likes = int(np.expm1(rng.normal(mu, 0.6)).clip(0))
            when = start + dt.timedelta(minutes=int(5 + 7 * rank + rng.integers(0, 10)))
            post = Post(
                f"{lt.topic_id}r{rank:03d}",
                lu.user_id,
                text,
                _iso(when),
                hashtags=[topic.hashtag] if text.startswith("#") else [],
                likes=likes,
                reposts=int(rng.poisson(0.1 * likes)),
                comments=int(rng.poisson(0.2 * likes)),
                screen_name=lu.screen_name,
            )
            u_out, t_out = int(ui) in heldout_users, ti in heldout_topics
            split = ("test_both" if u_out else "test_topic") if t_out else ("test_user" if u_out else "train")
            if split == "train" and rng.random() < cfg.validation_frac:
                split = "validation"
            responses.append(Response(topic_id=lt.topic_id, post=post, sentiment=s, split=split))
            probs[lu.user_id] = np.round(p, 6).tolist()
        yield "topic", (topic, lt, responses, probs)
    themes = concept_themes(seed)
    for i in range(cfg.n_smp_users):
        for post in sample_smp_user_posts(seed, i, cfg.smp_posts_per_user, themes):
            yield "smp", post


def generate_world(cfg: WorldConfig | None = None, progress: bool = False, **overrides) -> World:
    """Build a world in memory (``tiny`` and ``course`` sizes)."""
    cfg = replace(cfg, **overrides) if cfg is not None else WorldConfig(**overrides)
    users, lus, topics, lts, responses, probs, smp = [], {}, [], {}, [], {}, []
    for kind, item in iter_world(cfg, progress=progress):
        if kind == "user":
            u, lu = item  # type: ignore[misc]
            users.append(u)
            lus[u.user_id] = lu
        elif kind == "topic":
            t, lt, rs, ps = item  # type: ignore[misc]
            topics.append(t)
            lts[t.topic_id] = lt
            responses.extend(rs)
            probs.update({(t.topic_id, uid): p for uid, p in ps.items()})
        else:
            smp.append(item)
    return World(cfg, topics, users, responses, lus, lts, probs, smp)


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def write_world(cfg: WorldConfig, out_dir: str | os.PathLike, progress: bool = True) -> Path:
    """Stream a world to ``out_dir`` (JSON Lines), atomically: a temp folder is renamed into place at the end,
    so an interrupted run never leaves a half-written world behind.

    Files: ``topics.jsonl``, ``users.jsonl``, ``responses.jsonl``, ``smp_posts.jsonl``, ``world.json`` (config and
    counts) and ``truth/`` (``personas.jsonl``, ``topics.jsonl``, ``response_probs.jsonl``, ``crowd.jsonl``).
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "truth").mkdir()
        names = [
            "topics",
            "users",
            "responses",
            "smp_posts",
            "truth/personas",
            "truth/topics",
            "truth/response_probs",
            "truth/crowd",
        ]
        files = {n: open(tmp / f"{n}.jsonl", "w", encoding="utf-8") for n in names}  # noqa: SIM115
        counts = dict.fromkeys(["users", "topics", "responses", "smp_posts", "history_posts"], 0)
        split_counts: dict[str, int] = {}
        for kind, item in iter_world(cfg, progress=progress):
            if kind == "user":
                u, lu = item  # type: ignore[misc]
                files["users"].write(_dumps(u.to_dict()) + "\n")
                files["truth/personas"].write(_dumps({**lu.to_dict(), "persona": lu.true_persona()}) + "\n")
                counts["users"] += 1
                counts["history_posts"] += len(u.history)
            elif kind == "topic":
                t, lt, rs, ps = item  # type: ignore[misc]
                files["topics"].write(_dumps(t.to_dict()) + "\n")
                files["truth/topics"].write(_dumps(lt.to_dict()) + "\n")
                dist = np.zeros(len(cfg.labels))
                emp = np.zeros(len(cfg.labels))
                for r in rs:
                    files["responses"].write(_dumps(r.to_dict()) + "\n")
                    files["truth/response_probs"].write(
                        _dumps(
                            {"topic_id": t.topic_id, "user_id": r.post.user_id, "probs": ps[r.post.user_id]}
                        )
                        + "\n"
                    )
                    dist += np.asarray(ps[r.post.user_id])
                    emp[cfg.labels.index(r.sentiment)] += 1
                    split_counts[r.split] = split_counts.get(r.split, 0) + 1
                files["truth/crowd"].write(
                    _dumps(
                        {
                            "topic_id": t.topic_id,
                            "labels": list(cfg.labels),
                            "expected": np.round(dist / len(rs), 6).tolist(),
                            "empirical": np.round(emp / len(rs), 6).tolist(),
                            "n": len(rs),
                        }
                    )
                    + "\n"
                )
                counts["topics"] += 1
                counts["responses"] += len(rs)
            else:
                files["smp_posts"].write(_dumps(item) + "\n")
                counts["smp_posts"] += 1
        for f in files.values():
            f.close()
        meta = {
            "config": asdict(cfg),
            "counts": counts,
            "splits": dict(sorted(split_counts.items())),
            "labels": list(cfg.labels),
        }
        (tmp / "world.json").write_text(_dumps(meta) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
