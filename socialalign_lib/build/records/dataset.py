"""The record dataset: cases × prompt variants → records (retrieval + persona + template) → ``DatasetDict``.

Records carry character spans (:mod:`.template`); tokenising them is training's business (:mod:`.chat`). The
world's five splits are always present (possibly empty), with explicit ``datasets`` features so that empty splits
still have their columns.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from socialalign_lib.data.schema import Case, Persona, Post, User

from .template import SPLITS, VARIANTS, RecordError, render_parts_record, render_record

if TYPE_CHECKING:
    from datasets import DatasetDict

    from socialalign_lib.world import World

log = logging.getLogger(__name__)


def record_features():
    """The ``datasets`` schema of a record (explicit, so empty splits still have columns)."""
    from datasets import Features, List, Value

    text = Value("string")
    return Features(
        {
            "instruction": text,
            "input": text,
            "output": text,
            "user_span": List(Value("int64"), length=2),
            "news_span": List(Value("int64"), length=2),
            "sentiment": text,
            "case_id": text,
            "topic_id": text,
            "user_id": text,
            "category": text,
            "split": text,
            "variant": text,
            "hashtag": text,
            "user_name": text,
            "history_ids": List(text),
        }
    )


def build_records(
    cases: Iterable[Case],
    retrieval_cfg: Any | None = None,
    persona_by_user: Mapping[str, Persona | str] | None = None,
    variants: Sequence[str] = ("full",),
    history_filter: Callable[[User], list[Post]] | None = None,
    persona_by_user_topic: Mapping[tuple[str, str], Persona | str] | None = None,
) -> list[dict[str, Any]]:
    """Records for ``cases`` × ``variants``; history = BM25 top-k of the user's history for the news.

    ``history_filter(user)`` returns the posts retrieval may choose from (e.g. ``clean.HistoryFilter()``, the
    official rules); by default the whole history. A user it returns no posts for is skipped with all their
    cases (counted in a warning), as upstream skips users with fewer than 10 posts left. The target post is
    removed from it (by id), as upstream does.

    Persona, first found: ``persona_by_user_topic[(user_id, topic_id)]`` (the official protocol: one persona per
    (user, topic), written from the posts retrieved for that news, see ``persona.personas_per_topic``), then
    ``persona_by_user[user_id]`` (ours: one persona per user), then ``case.user.persona``. A variant that needs
    one and finds none raises :class:`RecordError` naming the case.

    A case read from an official record (``case.record_parts``, from ``loaders.load_socialalign_cases``) is
    rendered from its own parts by :func:`render_parts_record`: its five posts and its persona as the record has
    them (no retrieval, no filter, no ``persona_by_user``), so its own variant comes back identical. Variants its
    record has no parts for (``full`` from a ``without_history`` record, or from a ``without_persona`` record
    with no persona given) are skipped and counted in a warning.
    """
    from ..retrieval import RetrievalConfig, retrieve_history

    cfg = retrieval_cfg or RetrievalConfig(k=5)
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise RecordError(f"unknown variant(s) {bad}; choose from {VARIANTS}")
    needs_history = any(v != "without_history" for v in variants)
    by_topic = persona_by_user_topic or {}
    # keyed by the user *and* their history: the same user id may come with different histories (one per case)
    filtered: dict[tuple[str, tuple[str, ...]], list[Post]] = {}
    out, skipped, missing_parts = [], 0, 0
    for case in cases:
        uid = case.user.user_id
        topic_persona = by_topic.get((uid, case.topic.topic_id))
        if case.record_parts is not None:
            for v in variants:
                persona = topic_persona
                if persona is None and v != "without_persona" and case.record_parts.persona_text is None:
                    persona = (persona_by_user or {}).get(uid, case.user.persona)
                try:
                    out.append(render_parts_record(case, v, persona))
                except RecordError:
                    missing_parts += 1
            continue
        key = (uid, tuple(p.post_id for p in case.user.history))
        if key not in filtered:
            filtered[key] = history_filter(case.user) if history_filter else list(case.user.history)
        if history_filter is not None and not filtered[key]:
            skipped += 1  # the filter skipped this user (upstream: < 10 posts left), so upstream has no case
            continue
        history = [p for p in filtered[key] if p.post_id != case.response.post_id]
        posts = [p for p, _ in retrieve_history(history, case.topic.news, cfg)] if needs_history else []
        persona = (
            topic_persona
            if topic_persona is not None
            else (persona_by_user or {}).get(uid, case.user.persona)
        )
        out += [render_record(case, [] if v == "without_history" else posts, persona, v) for v in variants]
    if skipped:
        log.warning(
            "history_filter left no posts for the users of %d case(s); those cases were skipped", skipped
        )
    if missing_parts:
        log.warning(
            "%d (case, variant) pair(s) of official records skipped: the record lacks the history or persona "
            "that variant needs",
            missing_parts,
        )
    return out


def build_dataset(
    world_or_cases: World | Iterable[Case],
    retrieval_cfg: Any | None = None,
    persona_by_user: Mapping[str, Persona | str] | None = None,
    variants: Sequence[str] = ("full",),
    splits: Sequence[str] = SPLITS,
    history_filter: Callable[[User], list[Post]] | None = None,
    num_proc: int | None = None,
    persona_by_user_topic: Mapping[tuple[str, str], Persona | str] | None = None,
) -> DatasetDict:
    """A ``DatasetDict`` with the world's splits: train / validation / test_user (unseen users) /
    test_topic (unseen topics) / test_both; every split present, possibly empty. Arguments as in
    :func:`build_records`.

    ``num_proc`` > 1 renders the cases in that many processes (``datasets.map``; retrieval tokenises every
    user's history per case, the slow part on a SentiWeibo-size set); the records and their order are the same.
    """
    from datasets import Dataset, DatasetDict

    cases = world_or_cases.cases() if hasattr(world_or_cases, "cases") else list(world_or_cases)
    if num_proc and num_proc > 1 and len(cases) > 1:

        def render(batch: dict[str, list[int]]) -> dict[str, list[Any]]:
            rows = build_records(
                [cases[i] for i in batch["i"]],
                retrieval_cfg,
                persona_by_user,
                variants,
                history_filter,
                persona_by_user_topic,
            )
            return {k: [r[k] for r in rows] for k in record_features()}

        index = Dataset.from_dict({"i": list(range(len(cases)))})
        shard = -(-len(cases) // (4 * num_proc))  # a few batches per process keep them evenly busy
        records = index.map(
            render,
            batched=True,
            batch_size=shard,
            num_proc=num_proc,
            remove_columns=["i"],
            features=record_features(),
            desc="records",
        ).to_list()
    else:
        records = build_records(
            cases, retrieval_cfg, persona_by_user, variants, history_filter, persona_by_user_topic
        )
    unknown = sorted({r["split"] for r in records} - set(splits))
    if unknown:
        raise RecordError(f"cases carry split(s) {unknown} not in {list(splits)}")
    feats = record_features()

    def split_dataset(rows: list[dict[str, Any]]) -> Dataset:
        # from_list([]) fails on an empty split in datasets 4.x ("Keys mismatch"); columns of [] do not
        return Dataset.from_dict({k: [r[k] for r in rows] for k in feats}, features=feats)

    return DatasetDict({s: split_dataset([r for r in records if r["split"] == s]) for s in splits})


def export_jsonl(dataset: DatasetDict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write each split to ``{out_dir}/{split}.jsonl`` (atomically, via ``io.write_jsonl``)."""
    from socialalign_lib.data.write import write_jsonl

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, ds in dataset.items():
        paths[split] = out / f"{split}.jsonl"
        write_jsonl(paths[split], ds.to_list())
    return paths
