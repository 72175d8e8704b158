"""Explorer view functions return the right topic's numbers and replies that exist."""

from __future__ import annotations

import numpy as np
import pytest

from socialalign_lib.explore import topic_view, user_view, world_explorer
from socialalign_lib.world import generate_world


@pytest.fixture(scope="module")
def world():
    return generate_world(size="tiny", seed=0)


@pytest.mark.parametrize("index", [0, 3, -1])
def test_topic_view(world, index):
    topic = world.topics[index]
    v = topic_view(world, topic.topic_id)
    assert v["news"] == topic.news and v["hashtag"] == topic.hashtag
    assert np.allclose(list(v["true_distribution"].values()), world.true_crowd()[topic.topic_id])
    assert np.isclose(sum(v["empirical_distribution"].values()), 1)
    real = {(r.post.user_id, r.post.text) for r in world.responses if r.topic_id == topic.topic_id}
    assert v["replies"] and all((r["user_id"], r["text"]) in real for r in v["replies"])


@pytest.mark.parametrize("index", [0, 7])
def test_user_view(world, index):
    user = world.users[index]
    v = user_view(world, user.user_id)
    assert v["history"][0] == user.history[0].full_text
    assert set(v["persona"]) == {"interests", "language_style", "emotional_tone", "personality", "values"}
    assert all(r["text"] for r in v["replies"])


def test_widget_builds_headless_and_saves_static_view(world, tmp_path):
    box = world_explorer(world, figures_dir=tmp_path)
    assert len(box.children) == 2
    assert (tmp_path / "00_world_explorer.png").exists()
