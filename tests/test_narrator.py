"""NARRATOR: feature pipeline, masking, attention, ablation widths, training, determinism, loaders, HF encoder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from socialalign_lib.popularity.narrator import (
    HashtagGuidedAttention,
    NarratorConfig,
    NarratorModel,
    TrainConfig,
    init_char_image,
    mean_ci,
    predict,
    regression_metrics,
    run_ablations,
    subset,
    summarise,
    train_narrator,
)
from socialalign_lib.popularity.narrator_features import (
    CONTEXT_FEATURES,
    DEMO_FEATURES,
    CharTextEncoder,
    FeatureConfig,
    encode_posts,
    labeller_sentiment,
    prepare_posts,
    truth_sentiment,
)
from socialalign_lib.world.smp import concept_themes, hashtag_alignment, sample_smp_user_posts

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def posts() -> pd.DataFrame:
    themes = concept_themes(0)
    rows = [p for i in range(30) for p in sample_smp_user_posts(0, i, (5, 8), themes)]
    return prepare_posts(pd.DataFrame(rows))


@pytest.fixture(scope="module")
def encoded(posts):
    enc = CharTextEncoder.fit(posts)
    return enc, encode_posts(posts, enc, FeatureConfig(), truth_sentiment(posts))


def _odd_posts() -> pd.DataFrame:
    """Posts missing hashtags, images, faces, user prior or date (what real loaders return)."""
    return pd.DataFrame(
        [
            {
                "title": "猫的午后",
                "tags": ["猫", "宠物"],
                "hashtags": ["猫太美了"],
                "image_regions": np.ones((4, 16)).tolist(),
                "faces": [{"age": 25, "gender": "female"}],
                "user_avgview": 5.0,
                "postdate": 1_700_000_000,
                "popularity": 6.0,
            },
            {
                "title": "随手一拍",
                "tags": [],
                "hashtags": [],
                "image_regions": None,
                "faces": [],
                "user_avgview": None,
                "postdate": None,
                "popularity": 4.0,
            },
            {"title": "", "tags": [], "hashtags": ["随手拍"], "image_regions": [], "popularity": 5.0},
        ]
    )


def test_shapes_and_masks_with_missing_parts():
    df = _odd_posts()
    enc = CharTextEncoder.fit(df)
    b = encode_posts(
        df, enc, FeatureConfig(), lambda ts: np.tile([0.2, 0.5, 0.3], (len(ts), 1)), image_dim=16
    )
    assert b["text"].shape == (3, 48) and b["tags"].shape == (3, 3, 10) and b["image"].shape == (3, 4, 16)
    assert b["demo"].shape == (3, len(DEMO_FEATURES)) and b["context"].shape == (3, len(CONTEXT_FEATURES))
    assert b["tag_mask"].sum(1).tolist() == [1, 0, 1]
    assert b["image_mask"].sum(1).tolist() == [4, 0, 0]
    assert not b["text_mask"][2].any()  # an empty text has no valid key at all
    assert b["context"][1, 1] == 1 and b["context"][2, 1] == 1  # missing user prior flagged
    assert torch.allclose(b["sent"][1], torch.zeros(3))
    for guidance in ("hashtag", "self", "mean"):
        model = NarratorModel(NarratorConfig(text_dim=enc.dim, guidance=guidance)).eval()
        out = model(b)
        assert out.shape == (3,) and torch.isfinite(out).all()


def test_hashtag_guided_attention_weights_sum_to_one_over_valid_keys():
    torch.manual_seed(0)
    att = HashtagGuidedAttention(8, 8, 8, 8)
    q, k = torch.randn(4, 3, 8), torch.randn(4, 5, 8)
    q_mask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1]], dtype=torch.bool)
    k_mask = torch.tensor(
        [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool
    )
    attended, w, cos = att(q, q_mask, k, k_mask)
    assert w.shape == (4, 3, 5) and cos.shape == (4, 3, 5) and attended.shape == (4, 8)
    assert torch.all(w[~k_mask.unsqueeze(1).expand_as(w)] == 0)  # masked keys get nothing
    sums = w.sum(-1)
    valid_row = q_mask & k_mask.any(1, keepdim=True)
    assert torch.allclose(sums[valid_row], torch.ones(int(valid_row.sum())), atol=1e-6)
    assert torch.all(sums[~valid_row] == 0)  # masked queries, and rows without any valid key: zeros, not NaN
    assert torch.isfinite(attended).all() and torch.all(cos.abs() <= 1 + 1e-5)


def test_model_attention_per_modality_sums_to_one(encoded):
    enc, data = encoded
    model = NarratorModel(NarratorConfig(text_dim=enc.dim)).eval()
    b = subset(data, slice(0, 40))
    model(b)
    w, n_text = model.last_weights, model.last_keys["n_text"]
    has = b["tag_mask"].any(1)
    rows = torch.where(has[:, None], b["tag_mask"], torch.arange(3) == 0)  # no hashtags: the generic query
    for part, mask in ((w[..., :n_text], b["text_mask"]), (w[..., n_text:], b["image_mask"])):
        sums = part.sum(-1)
        ok = rows & mask.any(1, keepdim=True)
        assert torch.allclose(sums[ok], torch.ones(int(ok.sum())), atol=1e-5)
        assert torch.all(sums[~rows] == 0)


def test_ablation_switches_change_the_head_width_as_intended(encoded):
    enc, _ = encoded
    base = NarratorConfig(text_dim=enc.dim, d=16, content_dim=8)
    full = NarratorModel(base).fusion_width
    assert full == 8 * 2 + 2 + len(CONTEXT_FEATURES) + len(DEMO_FEATURES) + 3
    assert NarratorModel(replace(base, use_demographics=False)).fusion_width == full - len(DEMO_FEATURES)
    assert NarratorModel(replace(base, use_sentiment=False)).fusion_width == full - 3
    assert (
        NarratorModel(replace(base, use_image=False)).fusion_width == full - 8 - 1
    )  # content block + its score
    for g in ("self", "mean"):  # best-match scores replaced by the pooled hashtag vector
        assert NarratorModel(replace(base, guidance=g)).fusion_width == full - 2 + 8
    assert NarratorModel(base).head[0].in_features == full
    with pytest.raises(ValueError, match="guidance"):
        NarratorConfig(text_dim=10, guidance="cross")


@pytest.mark.slow
def test_model_overfits_a_tiny_batch(encoded):
    enc, data = encoded
    b = subset(data, slice(0, 24))
    torch.manual_seed(0)
    model = NarratorModel(NarratorConfig(text_dim=enc.dim, dropout=0.0))
    y = (b["y"] - b["y"].mean()) / b["y"].std()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(250):
        loss = torch.nn.functional.mse_loss(model(b), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.02


@pytest.mark.slow
def test_training_is_deterministic_for_a_seed_and_learns(encoded):
    enc, data = encoded
    n = len(data["y"])
    tr, va = subset(data, slice(0, int(0.8 * n))), subset(data, slice(int(0.8 * n), n))
    cfg, tcfg = NarratorConfig(text_dim=enc.dim), TrainConfig(epochs=3, progress=False, seed=1)
    m1, h1 = train_narrator(cfg, tr, va, tcfg)
    m2, h2 = train_narrator(cfg, tr, va, tcfg)
    m3, _ = train_narrator(cfg, tr, va, replace(tcfg, seed=2))
    p1, p2, p3 = predict(m1, va), predict(m2, va), predict(m3, va)
    assert np.array_equal(p1, p2) and h1 == h2
    assert not np.allclose(p1, p3)
    assert len(h1) == 3 and {"train_loss", "val_mse", "val_mae", "val_src"} <= set(h1[0])
    # better than predicting the training mean (the user prior alone explains a lot)
    assert regression_metrics(p1, va["y"].numpy())["mse"] < float(((va["y"] - tr["y"].mean()) ** 2).mean())


def test_cooccurrence_init_points_char_embeddings_at_their_concepts(posts, encoded):
    enc, data = encoded
    model = NarratorModel(NarratorConfig(text_dim=enc.dim))
    assert init_char_image(model, data) > 0
    themes = concept_themes(0)
    cos = [
        float(
            model.char_image.weight.detach()[enc.vocab.index[c]]
            @ torch.tensor(themes[c], dtype=torch.float32)
        )
        for c in ("猫", "狗", "鸟", "桥", "塔")
        if c in enc.vocab.index
    ]
    assert cos and np.mean(cos) > 0.3  # random 16-d directions would average ~0


def test_world_alignment_levels_match_the_hashtags(posts):
    sub_of = {"猫": "宠物", "狗": "宠物", "熊猫": "野生"}
    assert hashtag_alignment("猫", "猫", [], sub_of) == 1.0
    assert hashtag_alignment("熊猫", "猫", ["熊猫"], sub_of) == 0.5
    assert hashtag_alignment("狗", "猫", [], sub_of) == 0.25
    assert hashtag_alignment("熊猫", "猫", [], sub_of) == 0.0
    no_named = posts[[all(h in ("今日份快乐", "随手拍", "再也不去了") for h in hs) for hs in posts.hashtags]]
    assert (no_named.truth.map(lambda t: t["align"]) == 0).all()
    aligned = posts[
        [any(h.startswith(c) or h.endswith(c) for h in hs) for hs, c in zip(posts.hashtags, posts.concept)]
    ]
    assert (aligned.truth.map(lambda t: t["align"]) == 1.0).all()


def test_sentiment_sources():
    class Five:
        labels = ("--", "-", "0", "+", "++")

        def predict_proba(self, texts):
            return np.tile([0.1, 0.2, 0.3, 0.25, 0.15], (len(texts), 1))

    out = labeller_sentiment(Five())(["a", "b"])
    assert np.allclose(out, [[0.3, 0.3, 0.4]] * 2)
    df = pd.DataFrame({"hashtags": [["猫太美了", "随手拍"]], "hashtag_sentiments": [["positive", "neutral"]]})
    assert np.array_equal(truth_sentiment(df)(["随手拍"]), [[0, 1, 0]])
    with pytest.raises(KeyError, match="no true sentiment"):
        truth_sentiment(df)(["没见过"])


def test_lexicon_labeller_feeds_encode_posts():
    from socialalign_lib.sentiment import LexiconLabeller

    df = _odd_posts()
    b = encode_posts(
        df, CharTextEncoder.fit(df), hashtag_sentiment=labeller_sentiment(LexiconLabeller()), image_dim=16
    )
    assert torch.allclose(b["sent"][[0, 2]].sum(1), torch.ones(2), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("loader, folder", [("load_smpd", "smpd"), ("load_tpic2017", "tpic2017")])
def test_loader_dataframes_train_without_images_faces_or_hashtags(loader, folder):
    from socialalign_lib import loaders

    df = prepare_posts(getattr(loaders, loader)(FIXTURES / folder))
    enc = CharTextEncoder.fit(df)
    b = encode_posts(df, enc, FeatureConfig(), image_dim=16)
    assert not b["image_mask"].any()
    model, hist = train_narrator(
        NarratorConfig(text_dim=enc.dim), b, b, TrainConfig(epochs=2, progress=False)
    )
    assert np.isfinite(predict(model, b)).all() and len(hist) == 2


@pytest.mark.slow
def test_hf_text_encoder_with_a_tiny_random_bert(tmp_path, posts):
    import transformers

    chars = sorted(
        {ch for t in posts.title for ch in t} | {ch for hs in posts.hashtags for h in hs for ch in h}
    )
    (tmp_path / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]) + "\n"
    )
    transformers.BertTokenizer(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    cfg = transformers.BertConfig(
        vocab_size=5 + len(chars),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    transformers.BertModel(cfg).save_pretrained(tmp_path)

    from socialalign_lib.popularity.narrator_features import HFTextEncoder

    enc = HFTextEncoder(str(tmp_path), batch_size=16)
    df = posts.iloc[:40]
    b = encode_posts(df, enc, FeatureConfig(text_len=24, tag_len=8))
    assert b["text"].shape == (40, 24, 16) and b["tags"].shape == (40, 3, 16)
    assert b["text_mask"][:, 0].all()  # [CLS]
    assert enc.tokens("猫的午后", 8)[0] == "[CLS]"
    model, _ = train_narrator(
        NarratorConfig(text_dim=enc.dim, text_kind="states"), b, b, TrainConfig(epochs=2, progress=False)
    )
    assert np.isfinite(predict(model, b)).all()


@pytest.mark.slow
def test_run_ablations_and_summary(encoded):
    enc, data = encoded
    res = run_ablations(
        NarratorConfig(text_dim=enc.dim, d=16),
        data,
        seeds=(0, 1),
        variants={"NARRATOR (full)": {}, "w/o demographics": {"use_demographics": False}},
        tcfg=TrainConfig(epochs=1, progress=False),
    )
    assert set(res.variant) == {
        "linear: context + demographics + sentiment",
        "NARRATOR (full)",
        "w/o demographics",
    }
    table = summarise(res)
    assert "±" in table.loc["NARRATOR (full)", "mse"] and table.loc[
        "w/o demographics", "Δmse vs full"
    ].startswith(("+", "-"))
    mu, ci = mean_ci([1.0, 2.0, 3.0])
    assert mu == 2.0 and ci == pytest.approx(4.303 * 1.0 / np.sqrt(3), rel=1e-3)
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert (
        m["mse"] == pytest.approx(1 / 3)
        and m["mae"] == pytest.approx(1 / 3)
        and m["src"] == pytest.approx(1.0)
    )


def test_figures_and_match_scores(posts, encoded):
    import matplotlib.pyplot as plt

    from socialalign_lib.popularity.narrator import (
        match_scores,
        plot_ablation_results,
        plot_hashtag_attention,
    )

    enc, data = encoded
    model = NarratorModel(NarratorConfig(text_dim=enc.dim)).eval()
    scores = match_scores(model, data)
    assert scores.shape == (len(posts), 2)
    assert np.all(scores[~data["tag_mask"].any(1).numpy()] == 0)
    idx = [i for i in range(len(posts)) if posts.hashtags[i]][:2] + [int(np.argmin(posts.hashtags.map(len)))]
    fig = plot_hashtag_attention(model, data, posts.to_dict("records"), enc, idx, themes=concept_themes(0))
    assert len(fig.axes) == 2 * len(idx)
    res = pd.DataFrame(
        {
            "variant": ["NARRATOR (full)", "w/o image"] * 2,
            "seed": [0, 0, 1, 1],
            "test_mse": [0.3, 0.35, 0.32, 0.33],
        }
    )
    fig2 = plot_ablation_results(res)
    assert "held-out MSE" in fig2.axes[0].get_xlabel()
    plt.close("all")
    with pytest.raises(ValueError, match="hashtag guidance"):
        match_scores(NarratorModel(NarratorConfig(text_dim=enc.dim, guidance="mean")), data)


def test_pluggable_demographics_and_tpic_people_flag(tmp_path):
    from socialalign_lib.popularity.narrator_features import detector_demographics, face_demographics

    img = tmp_path / "a.jpg"
    img.write_bytes(b"")
    seen = []

    def detector(path: str):
        seen.append(path)
        return [{"age": 30, "gender": "female"}, {"age": 70, "gender": "male"}]

    demo = detector_demographics(detector)
    v = demo({"image": str(img)})
    assert seen == [str(img)] and v.tolist() == pytest.approx([2 / 3, 50 / 80, 1.0, 1.0, 0.5, 1.0])
    assert not demo({"image": "https://example.org/x.jpg"}).any() and len(seen) == 1  # URLs are not fetched
    assert (
        face_demographics({"haspeople": 1.0})[-1] == 1.0 and not face_demographics({"haspeople": 0.0}).any()
    )
