"""The course's data path in one call: world → personas → SocialAlign records → ``DatasetDict``.

Notebooks 02–06 and the CLI all start here, so every step after data preparation sees the same records for
the same ``(size, seed)``. On the embedded world the whole path takes seconds, so nothing is cached on disk
except the personas (the one step that is expensive with a real LLM backend); a real dataset enters through
``socialalign_lib.loaders`` and ``records.build_dataset`` instead.

:func:`build_from_cases` is the same for cases from elsewhere (official records, a crawl), with given personas and
the official history filter: the CLI's ``build`` command.
:func:`build_from_world` is the build half (personas + records for a world already made), reusable by anything that
has its own world (the background corpus of the embedded model builds records for other worlds the same way).
:func:`course_data` adds the one step before it, making the course's world from ``(size, seed)``: the only place the
build stage touches the simulator, imported there and only there (see the comment in it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .persona import (
    PersonaExtractor,
    PersonaRecord,
    StatisticalPersonaBackend,
    persona_posts,
    personas_of,
    personas_per_topic,
)
from .records import VARIANTS, build_dataset
from .retrieval import RetrievalConfig

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # annotations only: build never imports the simulator at module level
    from socialalign_lib.world import World


@dataclass
class CourseDataConfig:
    """What to build. ``retrieval.k``: history posts per prompt (paper: 5). ``persona_posts``: the posts each
    persona is extracted from (the ``k`` most recent when
    no news is at hand; the paper extracts from the BM25-retrieved posts)."""

    size: str = "course"  # world size: "tiny" (tests), "course" (notebooks), "large"
    seed: int = 0  # the world's seed (users, topics, replies and splits)
    variants: tuple[str, ...] = (
        VARIANTS  # prompt variants to render: full / without_persona / without_history
    )
    persona_posts: int = 10
    persona_cache_dir: str | None = None  # folder for the personas.jsonl cache (None: keep in memory)
    retrieval: RetrievalConfig = field(default_factory=lambda: RetrievalConfig(k=5))
    num_proc: int | None = None  # processes rendering the records (datasets.map); None = this one
    persona_protocol: str = "user"  # "user" (ours): one persona per user; "user_topic" (official): one per (user, topic) from that news' retrieved posts  # noqa: E501


@dataclass
class CourseData:
    world: World
    dataset: Any  # datasets.DatasetDict with the world's five splits
    personas: dict[
        Any, PersonaRecord
    ]  # by user id; by (user id, topic id) with persona_protocol="user_topic"
    config: CourseDataConfig

    def split(self, name: str, variant: str = "full"):
        """One split restricted to one prompt variant (``full`` / ``without_persona`` / ``without_history``)."""
        return self.dataset[name].filter(lambda v: v == variant, input_columns="variant")


class WorldBuild(NamedTuple):
    """What :func:`build_from_world` returns: the records as a ``DatasetDict``, and the persona records behind them."""

    dataset: Any  # datasets.DatasetDict with the world's five splits
    personas: dict[
        Any, PersonaRecord
    ]  # by user id; by (user id, topic id) with persona_protocol="user_topic"


def build_from_world(
    world: Any, config: CourseDataConfig | None = None, progress: bool = False, **overrides: Any
) -> WorldBuild:
    """The build steps for a world already made: personas with the offline statistical backend, then every case
    rendered into the requested prompt variants. ``world`` needs ``users`` and ``cases()`` (a ``world.World``);
    ``config.size`` and ``config.seed`` are not used (the world is given). ``overrides`` are ``CourseDataConfig``
    fields, e.g. ``build_from_world(world, variants=("full",))``."""
    cfg = config or CourseDataConfig(**overrides)
    if cfg.persona_protocol not in ("user", "user_topic"):
        raise ValueError(f"persona_protocol must be 'user' or 'user_topic', got {cfg.persona_protocol!r}")
    extractor = PersonaExtractor(StatisticalPersonaBackend(), cache_dir=cfg.persona_cache_dir)
    if cfg.persona_protocol == "user_topic":
        records = personas_per_topic(world.cases(), extractor, cfg.retrieval, progress=progress)
        dataset = build_dataset(
            world,
            cfg.retrieval,
            variants=cfg.variants,
            num_proc=cfg.num_proc,
            persona_by_user_topic=personas_of(records),
        )
    else:
        records = extractor.extract_users(
            world.users, lambda u: persona_posts(u, k=cfg.persona_posts), progress=progress
        )
        dataset = build_dataset(
            world, cfg.retrieval, personas_of(records), variants=cfg.variants, num_proc=cfg.num_proc
        )
    return WorldBuild(dataset, records)


def build_from_cases(
    cases: list[Any],
    config: CourseDataConfig | None = None,
    personas: dict[Any, Any] | None = None,
    history_filter: Any | None = None,
    progress: bool = False,
) -> Any:
    """Records for cases that did not come from ``(size, seed)``: official or crawled cases, or a world's with
    extra options (the CLI's ``build --cases`` / ``--personas`` / ``--history-filter``). Returns the
    ``DatasetDict``.

    ``personas`` (by user id) are used as given; users still without one, and not carrying their own
    (``case.user.persona``, or official records rendered verbatim through ``case.record_parts``), are extracted
    with the offline statistical backend (``config.persona_cache_dir`` caches them), unless every variant
    renders without a persona. ``config.persona_protocol="user_topic"`` extracts one persona per (user, topic)
    from that news' retrieved posts instead, the official protocol."""
    cfg = config or CourseDataConfig()
    personas = dict(personas or {})
    missing = {
        case.user.user_id: case.user
        for case in cases
        if case.record_parts is None and case.user.user_id not in personas and case.user.persona is None
    }
    if missing and cfg.persona_protocol == "user" and any(v != "without_persona" for v in cfg.variants):
        log.warning("%d user(s) have no persona: extracting them with the statistical backend", len(missing))
        extractor = PersonaExtractor(StatisticalPersonaBackend(), cache_dir=cfg.persona_cache_dir)
        personas.update(
            personas_of(
                extractor.extract_users(
                    missing.values(), lambda u: persona_posts(u, k=cfg.persona_posts), progress=progress
                )
            )
        )
    by_topic = None
    if cfg.persona_protocol == "user_topic":  # the official protocol: one persona per (user, topic)
        extractor = PersonaExtractor(StatisticalPersonaBackend(), cache_dir=cfg.persona_cache_dir)
        by_topic = personas_of(
            personas_per_topic(
                [c for c in cases if c.record_parts is None],
                extractor,
                cfg.retrieval,
                history_filter,
                progress=progress,
            )
        )
    return build_dataset(
        cases,
        cfg.retrieval,
        personas,
        variants=cfg.variants,
        history_filter=history_filter,
        num_proc=cfg.num_proc,
        persona_by_user_topic=by_topic,
    )


def course_data(
    config: CourseDataConfig | None = None, progress: bool = False, **overrides: Any
) -> CourseData:
    """Build the world, extract personas with the offline statistical backend, render every case into the
    requested prompt variants. ``overrides`` are ``CourseDataConfig`` fields."""
    cfg = config or CourseDataConfig(**overrides)
    if cfg.persona_protocol not in ("user", "user_topic"):
        raise ValueError(f"persona_protocol must be 'user' or 'user_topic', got {cfg.persona_protocol!r}")
    # Function-local on purpose: the course's entry point makes its own world from (size, seed), the one step of
    # this path that is simulation, not build. Importing the build stage, or building from real cases, never loads
    # the simulator.
    from socialalign_lib.world import generate_world

    world = generate_world(size=cfg.size, seed=cfg.seed)
    dataset, records = build_from_world(world, cfg, progress=progress)
    return CourseData(world, dataset, records, cfg)


def default_persona_cache(size: str, seed: int) -> Path:
    from socialalign_lib.paths import GENERATED_DIR

    return GENERATED_DIR / f"personas-{size}-seed{seed}"
