"""Real crowds from real-format exports: per hashtag, per day, real vs real, with missing crowds kept visible."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest

from socialalign_lib import crowds, macro
from socialalign_lib.data.loaders.weibo import load_daily_posts


class PrefixLabeller:
    """'neg…' → negative, 'neu…' → neutral, else positive; hashtags ignored as the real labellers do."""

    labels = ("negative", "neutral", "positive")

    def predict(self, texts):
        from socialalign_lib.sentiment import normalise_text

        return [{"neg": "negative", "neu": "neutral"}.get(normalise_text(t)[:3], "positive") for t in texts]


def _write(path, rows):
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["userid", "text"])
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode("gb18030"))


@pytest.fixture
def export(tmp_path):
    _write(
        tmp_path / "2024-03-01.csv",
        [
            ("1", "#油价# neg 又涨了??"),
            ("2", "#油价# neg 扛不住 O网页链接"),
            ("3", "#油价# pos 换电车了"),
            ("4", "#油价#"),
            ("5", "#航天# pos 骄傲"),
            ("6", "#航天##油价# neu 看看"),
            ("7", "#油价# neg 转发抽奖"),
            ("8", "#油价# neg 转发抽奖"),
            ("9", "#油价# neg  转发抽奖"),
        ],
    )
    _write(
        tmp_path / "2024-03-02.csv",
        [
            ("1", "#油价# pos 降了"),
            ("2", "#油价# pos 终于"),
            ("3", "#油价# neu 还行"),
            ("10", "#春晚# neg 难看"),
        ],
    )
    return load_daily_posts(tmp_path)


def test_posts_frame_and_crowds(export):
    posts = crowds.posts_frame(export)
    by_id = posts.set_index("post_id")
    assert (
        by_id.loc["2024-03-01-L2", "clean"] == "#油价# neg 又涨了"
        and by_id.loc["2024-03-01-L2", "day"] == "2024-03-01"
    )
    assert by_id.loc["2024-03-01-L3", "clean"] == "#油价# neg 扛不住"
    assert posts["post_id"].tolist()[:2] == ["2024-03-01-L2", "2024-03-02-L2"]  # user 1's history, day order
    assert set(posts.loc[posts.user_id == "1", "day"]) == {
        "2024-03-01",
        "2024-03-02",
    }  # one history, two days
    per_tag = crowds.hashtag_crowds(posts)
    assert per_tag.groupby(["hashtag", "day"]).size().to_dict() == {
        ("航天", "2024-03-01"): 2,
        ("油价", "2024-03-01"): 8,
        ("油价", "2024-03-02"): 3,
        ("春晚", "2024-03-02"): 1,
    }
    assert list(crowds.hashtag_crowds(posts, min_posts=2)["hashtag"].unique()) == ["油价", "航天"]


def test_duplicates_and_wordless_posts_are_dropped_and_counted(export):
    per_tag = crowds.hashtag_crowds(crowds.posts_frame(export))
    dedup = crowds.drop_duplicate_posts(per_tag)
    assert dedup.attrs["duplicates"] == 2  # the bot's three copies (spacing differs) count once
    assert len(crowds.drop_duplicate_posts(per_tag, per="user")) == len(per_tag)  # three users, not repeats
    labelled = crowds.label_posts(dedup, PrefixLabeller())
    assert labelled.attrs == {"duplicates": 2, "no_words": 1}  # "#油价#" alone gets no label
    table = crowds.crowd_table(labelled, ["hashtag", "day"])
    oil = table.loc[("油价", "2024-03-01")]
    assert oil["n"] == 5 and oil["negative"] == pytest.approx(
        3 / 5
    )  # with the bot and the prior: 6/7 would be
    with_prior = crowds.crowd_table(
        crowds.label_posts(per_tag, PrefixLabeller(), no_words="prior"), ["hashtag", "day"]
    ).loc[("油价", "2024-03-01")]
    assert with_prior["n"] == 8


def test_compare_across_days_keeps_missing_crowds(export):
    labelled = crowds.label_posts(crowds.hashtag_crowds(crowds.posts_frame(export)), PrefixLabeller())
    out = crowds.compare_across(labelled, n_boot=200, seed=0)
    assert list(out) == ["2024-03-01 → 2024-03-02"]
    cmp = out["2024-03-01 → 2024-03-02"]
    assert cmp["missing"].to_dict() == {"春晚": "a", "油价": "", "航天": "b"}
    assert np.isnan(cmp.loc["航天", "js"]) and cmp.loc["航天", "n_a"] == 2
    oil = cmp.loc["油价"]
    p = np.array([oil["a_negative"], oil["a_neutral"], oil["a_positive"]])
    q = np.array([oil["b_negative"], oil["b_neutral"], oil["b_positive"]])
    m = (p + q) / 2
    kl = lambda x, y: np.sum(np.where(x > 0, x * np.log2(np.where(x > 0, x, 1) / y), 0.0))  # noqa: E731
    assert oil["js"] == pytest.approx(0.5 * kl(p, m) + 0.5 * kl(q, m))
    assert 0 <= oil["js_low"] <= oil["js_high"] <= 1
    assert (oil["n_a"], oil["n_b"]) == (7, 3)  # 8 posts on day 1, one without words
    assert list(crowds.compare_across(labelled, pairs=[("2024-03-02", "2024-03-01")], n_boot=0)) == [
        "2024-03-02 → 2024-03-01"
    ]


def test_plots_take_display_names_and_mark_missing_crowds(export):
    labelled = crowds.label_posts(crowds.hashtag_crowds(crowds.posts_frame(export)), PrefixLabeller())
    cmp = crowds.compare_across(labelled, n_boot=100)
    names = {t: f"#{t}#" for t in ["油价", "航天", "春晚"]}
    fig = macro.plot_topic_divergence(cmp, topic_names=names, xlabel="hashtag")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["#油价#", "#春晚#", "#航天#"]
    assert any(line.get_marker() == "x" and len(line.get_xdata()) == 2 for line in ax.lines)  # the two gaps
    assert "no crowd to compare" in [t.get_text() for t in ax.get_legend().get_texts()]
    table = crowds.crowd_table(labelled, ["day", "hashtag"])
    dists = {d: table.loc[d] for d in ["2024-03-01", "2024-03-02"]}
    fig = macro.plot_crowd_bars(dists, topics=["油价", "航天", "春晚"], topic_names=names)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["#油价#", "#航天#", "#春晚#"]
    assert sum(t.get_text() == "n/a" for t in ax.texts) == 2  # 春晚 on day 1, 航天 on day 2
    import matplotlib.pyplot as plt

    plt.close("all")


def test_crowd_table_rejects_unknown_labels():
    with pytest.raises(ValueError, match=r"labels \['angry'\] are not in"):
        crowds.crowd_table(pd.DataFrame({"hashtag": ["a"], "sentiment": ["angry"]}))


def test_committed_export_sample_is_reproducible_strict_and_small(tmp_path):
    """The notebook-10 sample: real format (GB18030, CRLF, daily files), loads strictly, regenerates identically."""
    import importlib.util
    from pathlib import Path

    from socialalign_lib.sentiment import EMOTIONS_TO_POLARITY, load_labelled_csv

    root = Path(__file__).parents[1]
    sample = root / "data" / "weibo_export_sample"
    spec = importlib.util.spec_from_file_location(
        "make_export_sample", root / "tools" / "make_export_sample.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(out=tmp_path)
    files = sorted(p.relative_to(sample) for p in sample.rglob("*.csv"))
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.csv"))
    assert all((sample / f).read_bytes() == (tmp_path / f).read_bytes() for f in files)
    assert sum((sample / f).stat().st_size for f in files) < 200_000
    raw = (sample / "daily" / "2024-03-01.csv").read_bytes()
    assert raw.endswith(b"\r\n")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # GB18030, as the real exports
    data = load_daily_posts(sample / "daily")
    assert sorted({p.created_at for u in data.users for p in u.history}) == module.DAYS
    assert set(
        load_labelled_csv(sample / "emotions_labelled.csv", label_map=EMOTIONS_TO_POLARITY)["label"]
    ) == {"negative", "neutral", "positive"}
