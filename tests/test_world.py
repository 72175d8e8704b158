"""The embedded world: determinism, scale, truth files, and that its truth is what the data shows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from socialalign_lib.world import CATEGORY_KEYS, SIZES, WorldConfig, generate_world, write_world
from socialalign_lib.world.analysis import explained_sentiment


@pytest.fixture(scope="module")
def tiny(tiny_world):
    return tiny_world


def test_byte_identical_for_same_seed(tmp_path):
    a = write_world(WorldConfig(size="tiny", seed=3), tmp_path / "a", progress=False)
    b = write_world(WorldConfig(size="tiny", seed=3), tmp_path / "b", progress=False)
    c = write_world(WorldConfig(size="tiny", seed=4), tmp_path / "c", progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*.jsonl"))
    assert len(files) == 8
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert (a / "responses.jsonl").read_bytes() != (c / "responses.jsonl").read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temp folder left behind"


def test_truth_files_present_and_consistent(tmp_path):
    out = write_world(WorldConfig(size="tiny", seed=0), tmp_path / "w", progress=False)
    meta = json.loads((out / "world.json").read_text())
    crowd = [json.loads(line) for line in (out / "truth/crowd.jsonl").open()]
    personas = [json.loads(line) for line in (out / "truth/personas.jsonl").open()]
    assert len(crowd) == meta["counts"]["topics"] and len(personas) == meta["counts"]["users"]
    for row in crowd:
        assert np.isclose(sum(row["expected"]), 1, atol=1e-5) and np.isclose(
            sum(row["empirical"]), 1, atol=1e-5
        )
    assert set(personas[0]["persona"]) == {
        "interests",
        "language_style",
        "emotional_tone",
        "personality",
        "values",
    }
    assert sum(meta["splits"].values()) == meta["counts"]["responses"]


def test_sizes_scale():
    order = ["tiny", "course", "large"]
    for key in ("n_users", "n_topics"):
        assert [SIZES[s][key] for s in order] == sorted(SIZES[s][key] for s in order)
    large = WorldConfig(size="large")
    assert large.n_topics * large.replies_per_topic >= 50_000


def test_larger_world_extends_smaller_one():
    small = generate_world(size="tiny", seed=1)
    bigger = generate_world(size="tiny", seed=1, n_users=80)
    assert small.users[0].history == bigger.users[0].history  # per-entity random streams


def test_users_topics_and_posts_have_the_promised_shape(tiny):
    assert len(CATEGORY_KEYS) >= 8
    for u in tiny.users:
        assert len(u.history) >= 5
    posts = [p for u in tiny.users for p in u.history]
    assert any(p.retweet is not None for p in posts)
    assert any(p.hashtags for p in posts)
    for t in tiny.topics:
        assert t.hashtag and t.news and t.category
    splits = {r.split for r in tiny.responses}
    assert {"train", "test_user", "test_topic"} <= splits
    # unseen users never appear in training replies
    train_users = {r.post.user_id for r in tiny.responses if r.split == "train"}
    test_users = {r.post.user_id for r in tiny.responses if r.split in ("test_user", "test_both")}
    assert not train_users & test_users


def test_replies_depend_on_user_and_topic(tiny):
    texts = [r.post.text for r in tiny.responses]
    assert len(set(texts)) > 0.95 * len(texts)  # not one template
    table = explained_sentiment(tiny).set_index("predictor")["pseudo_r2"]
    assert table["both"] > table["topic"] + 0.1 > table["marginal"] + 0.1
    assert table["both"] > table["persona"] + 0.1
    assert table["topic"] > table["category"] + 0.1  # valence is drawn independently of the category


@pytest.mark.parametrize(
    "labels", [("negative", "positive"), ("neg", "neutral", "pos"), ("--", "-", "0", "+", "++")]
)
def test_label_set_is_configurable(labels):
    w = generate_world(size="tiny", seed=0, labels=labels, n_smp_users=0)
    assert {r.sentiment for r in w.responses} <= set(labels)
    assert all(len(p) == len(labels) for p in w.true_crowd().values())


def test_empirical_crowd_converges_to_truth():
    """More replies per topic → the empirical distribution approaches the exported expected one (LLN)."""

    def mean_tv(replies: int) -> float:
        w = generate_world(
            size="tiny",
            seed=5,
            n_users=600,
            n_topics=6,
            replies_per_topic=replies,
            n_smp_users=0,
            history_len=(5, 5),
        )
        true, emp = w.true_crowd(), w.empirical_crowd()
        return float(np.mean([0.5 * np.abs(np.subtract(true[t], emp[t])).sum() for t in true]))

    few, many = mean_tv(15), mean_tv(500)
    assert many < 0.05
    assert many < few / 2


def test_smp_posts(tiny):
    posts = tiny.smp_posts
    by_user: dict[str, list] = {}
    for p in posts:
        by_user.setdefault(p["uid"], []).append(p)
    assert all(len(v) >= 5 for v in by_user.values())
    assert any(p["hashtags"] for p in posts) and any(not p["hashtags"] for p in posts)
    assert any(p["faces"] for p in posts)
    assert np.array(posts[0]["image_regions"]).shape == (4, 16)
    pops = np.array([p["popularity"] for p in posts])
    assert pops.std() > 0.5
