"""The persona extractor: runs any backend over many users, with a resumable on-disk cache and recorded failures.

What a long run needs, once, whatever the backend: a JSONL cache keyed by user id + a hash of the posts used + the
backend's fingerprint (a second run makes no backend call; a torn last line from a crash is repaired atomically),
one writer per cache file (an OS lock), retries, and a recorded failure (with the error and the raw model output)
for every user that could not be parsed — never a silent drop. Also here: which posts a persona is extracted from
(:func:`persona_posts`, :func:`personas_per_topic`), since that choice is part of the cache key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socialalign_lib.data.persona_text import PersonaError
from socialalign_lib.data.schema import Persona, Post, User

from .backends import PersonaBackend, PersonaUnavailableError

log = logging.getLogger(__name__)


def history_hash(user_name: str, posts: Sequence[Post]) -> str:
    """Hash of exactly what a backend sees: the name and the posts' ids and texts (order matters)."""
    payload = json.dumps([user_name, [(p.post_id, p.full_text) for p in posts]], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass
class PersonaRecord:
    """The outcome for one user: a persona, or the error (and raw model output) that prevented one."""

    user_id: str
    history_hash: str
    backend: str
    persona: Persona | None = None
    error: str | None = None
    raw: str | None = None
    attempts: int = 1
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.persona is not None

    @property
    def key(self) -> str:
        return f"{self.user_id}|{self.history_hash}|{self.backend}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "user_id": self.user_id,
            "history_hash": self.history_hash,
            "backend": self.backend,
            "status": "ok" if self.ok else "failed",
            "persona": self.persona.to_dict() if self.persona else None,
            "error": self.error,
            "raw": self.raw,
            "attempts": self.attempts,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PersonaRecord:
        return cls(
            user_id=d["user_id"],
            history_hash=d["history_hash"],
            backend=d["backend"],
            persona=Persona.from_dict(d["persona"]) if d.get("persona") else None,
            error=d.get("error"),
            raw=d.get("raw"),
            attempts=int(d.get("attempts", 1)),
            cached=True,
        )


class PersonaExtractor:
    """Run a backend over many users with a resumable JSONL cache.

    The cache file ``{cache_dir}/personas.jsonl`` gets one line per finished user, appended as soon as the
    user is done, so an interrupted run loses at most the user in flight; a torn last line (a crash during
    the write) is dropped on load and the file rewritten atomically. Failures are cached too, with the
    error and the raw answer, and are not retried on the next run unless ``retry_failed`` — so a second run
    calls the backend for nobody. Within one run each user gets ``max_attempts`` tries (useful for sampling
    LLMs whose answer sometimes does not parse).

    ``extract_users(..., max_workers=N)`` keeps up to N requests in flight (threads: the work is waiting on an
    HTTP endpoint such as vLLM or Ollama, which batch concurrent requests). Cache appends and counters are
    serialised by a lock, so the cache stays one whole line per user and resumes the same way.

    One writer per cache file: a run holds an OS lock on it (``io.exclusive_output``), and a second process
    on the same folder is refused with :class:`io.OutputLockedError` instead of interleaving its lines.
    A backend that cannot answer anyone (:class:`PersonaUnavailableError`: dead endpoint, missing or refused
    key) is probed once before the run (``backend.probe()`` where it has one); its failures are not cached,
    and ``max_unavailable`` of them in a row stop the run with that error (a rerun resumes).
    """

    CACHE_NAME = "personas.jsonl"

    def __init__(
        self,
        backend: PersonaBackend,
        cache_dir: str | os.PathLike | None = None,
        max_attempts: int = 2,
        retry_failed: bool = False,
        backoff_s: float = 0.0,
        max_unavailable: int = 3,
    ) -> None:
        self.backend = backend
        self.cache_path = Path(cache_dir) / self.CACHE_NAME if cache_dir is not None else None
        self.max_attempts = max(1, max_attempts)
        self.retry_failed = retry_failed
        self.backoff_s = backoff_s
        self.max_unavailable = max(1, max_unavailable)
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._writing = False  # True while this extractor holds the cache file's lock
        self._unavailable: list[str] = []  # consecutive PersonaUnavailableError messages
        self._cache: dict[str, PersonaRecord] = self._load()

    def _load(self, repair: bool = False) -> dict[str, PersonaRecord]:
        if self.cache_path is None or not self.cache_path.exists():
            return {}
        from socialalign_lib.data.read import read_jsonl

        # Only the lock holder may cut a torn last line (then it can only be a dead run's); a reader without the
        # lock ignores it, as it may be another process's line being written right now.
        rows = read_jsonl(
            self.cache_path,
            required=("key", "user_id", "history_hash", "backend"),
            torn_tail="repair" if repair else "drop",
        )
        return {r["key"]: PersonaRecord.from_dict(r) for r in rows}

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the cache file's lock (re-entrant within this extractor) and read the cache afresh under it."""
        if self.cache_path is None or self._writing:
            yield
            return
        from socialalign_lib.data.append import exclusive_output

        with exclusive_output(self.cache_path, "persona cache"):
            self._writing = True
            try:
                self._cache = self._load(repair=True)
                yield
            finally:
                self._writing = False

    def _save(self, record: PersonaRecord) -> None:
        from socialalign_lib.data.append import append_jsonl

        with self._lock:
            self._cache[record.key] = record
            if self.cache_path is not None:
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                append_jsonl(self.cache_path, [record.to_dict()])

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def _cached(self, key: str) -> PersonaRecord | None:
        hit = self._cache.get(key)
        return hit if hit is not None and (hit.ok or not self.retry_failed) else None

    def extract(self, user_id: str, user_name: str, posts: Sequence[Post]) -> PersonaRecord:
        """One user's persona from ``posts`` (the 5 retrieved posts as in the paper, or a whole history)."""
        with self.writing():
            return self._extract(user_id, user_name, posts)

    def _extract(self, user_id: str, user_name: str, posts: Sequence[Post]) -> PersonaRecord:
        rec = PersonaRecord(user_id, history_hash(user_name, posts), self.backend.fingerprint)
        hit = self._cached(rec.key)
        if hit is not None:
            self._count("hits")
            hit.cached = True
            return hit
        if len(self._unavailable) >= self.max_unavailable:  # the run is stopping: do not ask a dead backend
            rec.error = f"PersonaUnavailableError: skipped, {self._unavailable[-1]}"
            return rec
        self._count("misses")
        for attempt in range(1, self.max_attempts + 1):
            rec.attempts = attempt
            try:
                rec.persona = self.backend.extract(user_name, posts)
                rec.error = rec.raw = None
                break
            except (
                PersonaUnavailableError
            ) as exc:  # nobody's fault but the endpoint's: not this user's outcome
                rec.error = f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self._unavailable.append(str(exc))
                    self.stats["unavailable"] += 1
                log.warning("persona for %s: backend unavailable: %s", user_id, exc)
                return rec  # not cached: a rerun asks again
            except PersonaError as exc:
                rec.error = f"{type(exc).__name__}: {exc}"
                rec.raw = getattr(exc, "raw", None)
                log.info(
                    "persona for %s failed (attempt %d/%d): %s",
                    user_id,
                    attempt,
                    self.max_attempts,
                    rec.error,
                )
                if attempt < self.max_attempts and self.backoff_s:
                    time.sleep(self.backoff_s * 2 ** (attempt - 1))
        with self._lock:
            self._unavailable.clear()
        self._count("ok" if rec.ok else "failed")
        self._save(rec)
        return rec

    def extract_users(
        self,
        users: Iterable[User],
        posts_for: Callable[[User], Sequence[Post]] | None = None,
        progress: bool = False,
        max_workers: int = 1,
    ) -> dict[str, PersonaRecord]:
        """Records for many users, in the users' order; ``posts_for(user)`` picks the posts (default: the whole
        history). ``max_workers`` > 1 runs that many users at once in threads (for an HTTP backend; a local HF
        model gains nothing). The cache file then lists users in completion order, which its keys make harmless.
        """
        from concurrent.futures import ThreadPoolExecutor

        from tqdm.auto import tqdm

        users = list(users)
        with self.writing():
            posts = [list(posts_for(u) if posts_for else u.history) for u in users]
            todo = sum(
                self._cached(
                    PersonaRecord(u.user_id, history_hash(u.screen_name, p), self.backend.fingerprint).key
                )
                is None
                for u, p in zip(users, posts, strict=True)
            )
            if todo and hasattr(self.backend, "probe"):
                self.backend.probe()  # a dead endpoint or a missing key fails here, once, not once per user
            self._unavailable.clear()
            bar = tqdm(
                total=len(users),
                desc=f"personas ({self.backend.fingerprint.split(':')[0]})",
                disable=not progress,
            )

            def one(i: int) -> PersonaRecord:
                rec = self._extract(users[i].user_id, users[i].screen_name, posts[i])
                bar.update(1)
                return rec

            try:
                if max_workers <= 1:
                    recs = [one(i) for i in range(len(users))]
                else:
                    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="persona") as pool:
                        recs = list(pool.map(one, range(len(users))))
            finally:
                bar.close()
            if len(self._unavailable) >= self.max_unavailable:
                done = sum(not (r.error or "").startswith("PersonaUnavailableError") for r in recs)
                raise PersonaUnavailableError(
                    f"stopped after {len(self._unavailable)} users in a row could not reach the backend "
                    f"({self._unavailable[-1]}); {done} of {len(users)} users are done and cached, "
                    "run again to resume"
                )
        return {u.user_id: r for u, r in zip(users, recs, strict=True)}


def personas_of(records: dict[Any, PersonaRecord]) -> dict[Any, Persona]:
    """The successful personas only (failures stay visible in ``records``)."""
    return {uid: r.persona for uid, r in records.items() if r.persona is not None}


def persona_posts(
    user: User, query: str | None = None, k: int = 5, retrieval_cfg: Any | None = None
) -> list[Post]:
    """The posts a persona is extracted from: BM25 top-``k`` for ``query`` (the paper: the news), or, for a
    single persona per user with no news at hand, the ``k`` most recent posts."""
    if query is None:
        return sorted(user.history, key=lambda p: (p.created_at, p.post_id))[-k:]
    from ..retrieval import RetrievalConfig, retrieve_history

    return [p for p, _ in retrieve_history(user.history, query, retrieval_cfg or RetrievalConfig(k=k))]


def personas_per_topic(
    cases: Iterable[Any],
    extractor: PersonaExtractor,
    retrieval_cfg: Any | None = None,
    history_filter: Callable[[User], list[Post]] | None = None,
    progress: bool = False,
) -> dict[tuple[str, str], PersonaRecord]:
    """The official persona protocol: one persona per (user, topic), written from the posts retrieved for *that*
    news — the user's history (``history_filter`` applied, the reply itself removed) ranked by BM25 against the
    news, top ``retrieval_cfg.k`` (default 5) — i.e. the same posts ``records.build_records`` puts into that
    prompt with the same ``retrieval_cfg`` and filter. Keyed ``(user_id, topic_id)``; pass
    :func:`personas_of` of it as ``persona_by_user_topic`` to ``records.build_dataset``. Ours (one persona per
    user from the ``k`` most recent posts, :func:`persona_posts` without a query) costs one extraction per user
    instead of one per case."""
    from tqdm.auto import tqdm

    from ..retrieval import RetrievalConfig, retrieve_history

    cfg = retrieval_cfg or RetrievalConfig(k=5)
    out: dict[tuple[str, str], PersonaRecord] = {}
    for case in tqdm(list(cases), desc="personas per (user, topic)", disable=not progress):
        key = (case.user.user_id, case.topic.topic_id)
        if key in out:
            continue
        pool = history_filter(case.user) if history_filter else case.user.history
        history = [p for p in pool if p.post_id != case.response.post_id]
        posts = [p for p, _ in retrieve_history(history, case.topic.news, cfg)]
        out[key] = extractor.extract(case.user.user_id, case.user.screen_name, posts)
    return out
