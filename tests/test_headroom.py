"""world/headroom.py: what the world allows a crowd-level model to learn, with self-selection on and off."""

from __future__ import annotations

import numpy as np
import pytest

from socialalign_lib.world import generate_world
from socialalign_lib.world.headroom import (
    PREDICTORS,
    HeadroomConfig,
    headroom,
    inclusion_probabilities,
    persona_share,
    power,
)


def test_inclusion_probabilities_match_successive_sampling():
    rng = np.random.default_rng(0)
    w = np.concatenate([rng.uniform(0.01, 0.1, 300), [5.0, 3.0, 1.0]])  # three heavy users saturate
    n, draws = 30, 4000
    counts = np.zeros(len(w))
    for _ in range(draws):
        counts[rng.choice(len(w), size=n, replace=False, p=w / w.sum())] += 1
    approx = inclusion_probabilities(w, n)
    assert approx.sum() == pytest.approx(n)
    assert np.abs(approx - counts / draws).max() < 0.03
    assert approx[-3:-1].min() > 0.95 and approx.max() <= 1  # the two heaviest users saturate at 1


def _test_topics(world):
    return sorted({r.topic_id for r in world.responses if r.split in ("test_topic", "test_both")})


@pytest.fixture(scope="module")
def course_worlds():
    return {sel: generate_world(size="course", crowd_selection=sel) for sel in (2.0, 0.0)}


@pytest.mark.slow
def test_persona_matters_at_the_crowd_level_only_with_selection(course_worlds):
    cfg = HeadroomConfig(n_sim=30, prior_topics=10)
    on, _ = headroom(course_worlds[2.0], _test_topics(course_worlds[2.0]), cfg)
    off, _ = headroom(course_worlds[0.0], _test_topics(course_worlds[0.0]), cfg)
    assert list(on.index) == list(PREDICTORS)
    assert persona_share(on) > 0.005  # measured 0.013 bits on the course world
    assert persona_share(off) == pytest.approx(0.0, abs=1e-12)  # the knob really switches selection off
    for table in (on, off):
        finite = table["JS (n replies)"]
        assert (
            finite["repliers' oracle"] < finite["topic oracle"] < finite["category prior"] < finite["uniform"]
        )


@pytest.mark.slow
def test_micro_headroom_orders_majority_topic_and_oracle(course_worlds):
    _, micro = headroom(
        course_worlds[2.0], _test_topics(course_worlds[2.0]), HeadroomConfig(n_sim=1, prior_topics=5)
    )
    acc = micro["expected accuracy"]
    assert (
        acc["majority class"] + 0.1
        < acc["persona-blind (topic argmax)"]
        < acc["oracle (argmax p(s|u,t))"] - 0.1
    )


@pytest.mark.slow
def test_course_design_has_power_with_selection_and_not_without(course_worlds):
    """The course's 12 unseen topics, all repliers, 3 sampling seeds: a paired test separates a perfect persona-aware
    model from a persona-blind one with power >= 0.8 when crowds self-select; without selection it cannot."""
    on = power(course_worlds[2.0], _test_topics(course_worlds[2.0]), seeds=3, n_experiments=200)
    off = power(course_worlds[0.0], _test_topics(course_worlds[0.0]), seeds=3, n_experiments=200)
    assert on >= 0.8 and off < 0.5, (on, off)
