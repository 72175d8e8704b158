"""Real-format loaders: tiny fixtures in the real shapes (tests/fixtures), mapped onto the schema."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from pathlib import Path

import pytest

from socialalign_lib.collect.parse import parse_count, parse_weibo_time
from socialalign_lib.data.errors import DataFormatError
from socialalign_lib.data.loaders.lamp import load_lamp
from socialalign_lib.data.loaders.popalm import load_popalm_pairs, load_popalm_sft, popalm_to_schema
from socialalign_lib.data.loaders.smp import SMP_COLUMNS, load_smpd, load_tpic2017
from socialalign_lib.data.loaders.socialalign import (
    load_socialalign_alpaca,
    load_socialalign_cases,
    parse_socialalign_instruction,
)
from socialalign_lib.data.loaders.weibo import (
    day_from_filename,
    load_daily_posts,
    load_posts_csv,
    load_weibo_crawler_csv,
    load_weibo_crawler_dir,
    load_weibo_crawler_json,
    load_weibo_search_csv,
)
from socialalign_lib.data.persona_text import parse_persona_text
from socialalign_lib.data.schema import Persona, Post
from socialalign_lib.data.text import extract_hashtags
from socialalign_lib.data.validate import validate_case, validate_user
from socialalign_lib.data.write import write_jsonl

FIX = Path(__file__).parent / "fixtures"
NOW = dt.datetime(2024, 3, 2, 10, 30, 0)


# ---------------------------------------------------------------------------------------------- counts, times


@pytest.mark.parametrize(
    "raw, value",
    [
        (551894, 551894),
        ("1.2万", 12000),
        ("100万+", 1_000_000),
        ("3亿", 300_000_000),
        ("3,201", 3201),
        ("转发", 0),
        ("", 0),
        (None, 0),
    ],
)
def test_parse_count(raw, value):
    assert parse_count(raw) == value


@pytest.mark.parametrize(
    "raw, iso",
    [
        ("Sat Dec 28 20:00:00 +0800 2019", "2019-12-28T20:00:00"),
        ("2019-12-28 20:00:00", "2019-12-28T20:00:00"),
        ("2024-03-01 18:02", "2024-03-01T18:02:00"),
        ("刚刚", "2024-03-02T10:30:00"),
        ("5分钟前", "2024-03-02T10:25:00"),
        ("3小时前", "2024-03-02T07:30:00"),
        ("昨天 23:15", "2024-03-01T23:15:00"),
    ],
)
def test_parse_weibo_time(raw, iso):
    assert parse_weibo_time(raw, NOW) == iso


def test_hashtags():
    assert extract_hashtags("#油价今晚上调# 又涨了 #航天##油价今晚上调#") == ["油价今晚上调", "航天"]


# ---------------------------------------------------------------------------------------------- SocialAlign


def test_socialalign_alpaca_records_are_parsed_and_raw_kept():
    recs = load_socialalign_alpaca(FIX / "socialalign" / "SocialWeibo_sample.json")
    assert [r.variant for r in recs] == ["full", "without_persona", "without_history"]
    full = recs[0]
    assert full.line == 2 and full.user_name == "小城故事多_88" and full.hashtag == "油价今晚上调"
    assert full.news.startswith("国家发改委消息") and full.news.endswith("上调0.16元。") and "\n" in full.news
    assert full.instruction[slice(*full.news_span)] == full.news
    assert full.instruction[slice(*full.user_span)].endswith("价值观：重视公平，关注民生。")
    assert len(full.history) == 5
    assert full.persona == Persona(
        "城市生活、新能源汽车、电影",
        "随意直接，爱用反问",
        "通常是中立的，偶尔抱怨",
        "务实、敢言",
        "重视公平，关注民生",
    )
    assert recs[2].persona is None and recs[2].persona_text == "兴趣广泛，喜欢评论时事。语气温和。"
    assert recs[2].history == [] and recs[2].extra == {"SocialLLM": "太棒了！"}

    cases = load_socialalign_cases(FIX / "socialalign" / "SocialWeibo_sample.json")
    repost = cases[0].user.history[1]
    assert repost.text == "又涨了，通勤成本扛不住" and repost.retweet.text.startswith(
        "【油价将迎年内第五涨】"
    )
    assert cases[0].response.hashtags == ["油价今晚上调"]
    assert cases[0].topic.topic_id == cases[1].topic.topic_id  # same hashtag, same topic
    validate_case(cases[0].to_dict())
    validate_case(cases[2].to_dict(), allow_empty_history=True)


@pytest.mark.parametrize("variant", ["full", "without_persona", "without_history"])
def test_instruction_parser_inverts_the_records_renderer(variant):
    from socialalign_lib.build.records.template import render_instruction

    history = [
        Post("h1", "u", "第一条 #话题#", ""),
        Post("h2", "u", "评论", "", retweet=Post("o", "m", "原文, 并评论说: 嵌套", "")),
    ]
    persona = Persona("科技", "随意", "积极", "乐观", "公平")
    text, user_span, news_span = render_instruction(
        "阿明", history, persona, "第一行\n第二行", "标签", variant
    )
    parts = parse_socialalign_instruction(text)
    assert parts["variant"] == variant
    assert (parts["user_name"], parts["news"], parts["hashtag"]) == ("阿明", "第一行\n第二行", "标签")
    assert parts["user_span"] == user_span and parts["news_span"] == news_span
    if variant != "without_history":
        assert parts["history"] == ["第一条 #话题#", "你转发了微博: 原文, 并评论说: 嵌套, 并评论说: 评论"]
    if variant != "without_persona":
        assert parse_persona_text(parts["persona_text"]) == persona


def test_socialalign_errors_name_line_and_field(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n {"instruction": "x", "output": "y"},\n {"instruction": "x"}\n]', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.json line 3, field 'output': missing"):
        load_socialalign_alpaca(path)
    path.write_text('[{"instruction": "not a template", "output": "y"}]', encoding="utf-8")
    assert load_socialalign_alpaca(path)[0].variant is None  # kept, unparsed
    with pytest.raises(DataFormatError, match=r"line 1, field 'instruction': instruction matches none"):
        load_socialalign_cases(path)


# ---------------------------------------------------------------------------------------------- weibo-crawler


def test_weibo_crawler_json_user():
    user = load_weibo_crawler_json(FIX / "weibo_crawler" / "1669879400" / "1669879400.json")
    assert (user.user_id, user.screen_name, user.gender, user.followers) == (
        "1669879400",
        "Dear-迪丽热巴",
        "女",
        79_514_000,
    )
    first, repost, third = user.history
    assert first == Post(
        "4454572602912349",
        "1669879400",
        "今天的#星光大赏# 好开心",
        "2019-12-28T20:00:00",
        ["星光大赏"],
        likes=551894,
        reposts=1_000_000,
        comments=182010,
        screen_name="Dear-迪丽热巴",
    )
    assert repost.retweet.user_id == "1684832145" and repost.retweet.reposts == 1_000_000
    assert repost.retweet.hashtags == ["娇韵诗双萃"] and repost.retweet.screen_name == "法国娇韵诗"
    assert (third.likes, third.comments, third.reposts) == (12000, 3201, 0)
    validate_user(user.to_dict())
    assert load_weibo_crawler_dir(FIX / "weibo_crawler") == [user]


def test_weibo_crawler_json_errors(tmp_path):
    doc = json.loads((FIX / "weibo_crawler" / "1669879400" / "1669879400.json").read_text(encoding="utf-8"))
    doc["weibo"][2]["attitudes_count"] = "很多"
    (tmp_path / "1.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(
        DataFormatError, match=r"1\.json, field 'weibo\[2\]\.attitudes_count': unreadable count"
    ):
        load_weibo_crawler_json(tmp_path / "1.json")
    doc["weibo"] = []
    (tmp_path / "1.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(DataFormatError, match="field 'weibo': empty history"):
        load_weibo_crawler_json(tmp_path / "1.json")


def test_socialalign_cleaned_history_form(tmp_path):
    """clean_user_history.py reduces posts to {text, *_count, topics, post_time, id, retweet?}."""
    doc = {
        "user": {"id": 42, "screen_name": "a"},
        "weibo": [
            {
                "text": "好",
                "attitudes_count": 1,
                "comments_count": 0,
                "reposts_count": 0,
                "topics": "",
                "id": 7,
                "post_time": "2024-10-27 08:00:00",
                "retweet": {
                    "text": "原文",
                    "attitudes_count": "2万",
                    "comments_count": 0,
                    "reposts_count": 0,
                    "topics": "话题",
                    "post_time": "昨天 09:00",
                },
            }
        ],
    }
    (tmp_path / "42.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    post = load_weibo_crawler_json(tmp_path / "42.json", now=NOW).history[0]
    assert post.created_at == "2024-10-27T08:00:00" and post.retweet.post_id == "7-rt"
    assert post.retweet.created_at == "2024-03-01T09:00:00" and post.retweet.likes == 20000


def test_weibo_crawler_csv():
    posts = load_weibo_crawler_csv(FIX / "weibo_crawler" / "Dear-迪丽热巴" / "1669879400.csv")
    assert [p.post_id for p in posts] == ["4454572602912349", "4454081098040623", "4453000000000001"]
    assert {p.user_id for p in posts} == {"1669879400"} and posts[0].screen_name == "Dear-迪丽热巴"
    assert (posts[0].reposts, posts[0].hashtags) == (1_000_000, ["星光大赏"])
    rt = posts[1].retweet
    assert (rt.post_id, rt.user_id, rt.screen_name, rt.likes) == (
        "4454028484570123",
        "1684832145",
        "法国娇韵诗",
        18000,
    )
    assert rt.text == "#娇韵诗双萃# 新年礼盒上线,\n限时发售"  # a quoted multi-line cell
    assert posts[2].created_at == "2019-12-24T09:05:00"  # 完整日期 empty → 日期
    assert (posts[2].likes, posts[2].comments, posts[2].reposts) == (12000, 3201, 0)


def test_weibo_search_csv_links_reposts():
    posts = load_weibo_search_csv(FIX / "weibo_search" / "油价今晚上调.csv")
    assert [p.user_id for p in posts] == ["7712345678", "2803301701", "6543210987"]
    assert posts[0].created_at == "2024-03-01T18:02:00" and posts[0].likes == 11000
    assert posts[2].retweet is posts[1] and posts[1].likes == 1_000_000


def test_csv_errors_name_line_and_column(tmp_path):
    src = (FIX / "weibo_crawler" / "Dear-迪丽热巴" / "1669879400.csv").read_text(encoding="utf-8-sig")
    bad = tmp_path / "1669879400.csv"
    bad.write_text(
        src.replace("2019-12-24 09:05:00", "").replace("2019-12-24T09:05:00", "某天"), encoding="utf-8-sig"
    )
    with pytest.raises(
        DataFormatError, match=r"1669879400\.csv line 5, field '日期': unreadable created_at '某天'"
    ):
        load_weibo_crawler_csv(bad)  # line 5: the quoted cell of row 2 spans lines 3-4


# ---------------------------------------------------------------------------------------------- GB18030 CSV


def test_gb18030_posts_csv_groups_topics_and_histories():
    data = load_posts_csv(FIX / "posts_gb18030.csv")
    assert [t.hashtag for t in data.topics] == ["油价今晚上调", "神舟十八号发射成功", "航天"]
    assert [u.user_id for u in data.users] == ["1001", "1002", "1003"]
    assert [p.text for p in data.users[1].history] == [
        "还好换了电车 #油价今晚上调#",
        "猫咪今天又拆家了，谁懂啊",
    ]
    oil = data.topics[0].topic_id
    assert sorted(r.post.user_id for r in data.responses if r.topic_id == oil) == ["1001", "1002"]
    assert len(data.responses) == 4  # the 航天 post answers two topics
    assert data.users[0].history[0].post_id == "posts_gb18030-L2"


def test_gb18030_csv_read_as_utf8_suggests_gb18030():
    with pytest.raises(
        DataFormatError, match=r'posts_gb18030\.csv line 2: not UTF-8 .*pass encoding="gb18030"'
    ):
        load_posts_csv(FIX / "posts_gb18030.csv", encoding="utf-8")


def test_posts_csv_missing_column(tmp_path):
    (tmp_path / "p.csv").write_bytes("uid,text\n1,你好\n".encode("gb18030"))
    with pytest.raises(DataFormatError, match=r"p\.csv line 2, field 'userid': missing column"):
        load_posts_csv(tmp_path / "p.csv")


def _export(rows, encoding="gb18030", newline="\r\n") -> bytes:
    """A ``userid,text`` export as the real daily files are written (csv module, CRLF, GB18030)."""
    import csv
    import io

    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator=newline)
    writer.writerow(["userid", "text"])
    writer.writerows(rows)
    return buf.getvalue().encode(encoding)


_ROWS = [
    (str(1000 + i), f"#油价今晚上调# 第{i}条：通勤成本又涨了，真的扛不住了，大家怎么看？") for i in range(60)
]


def test_posts_csv_cut_mid_row_is_an_error_naming_file_and_line(tmp_path):
    data = _export(_ROWS)
    # cut at a character boundary inside the text of a row (not at a line break), as a 5 000-byte head does
    cut = data.rindex("通勤".encode("gb18030"), 0, 2000)
    (tmp_path / "cut.csv").write_bytes(data[:cut])
    line = data[:cut].count(b"\n") + 1
    with pytest.raises(DataFormatError, match=rf"cut\.csv line {line}: the file ends without a line break"):
        load_posts_csv(tmp_path / "cut.csv")
    with pytest.warns(UserWarning, match="cut off"):
        kept = load_posts_csv(tmp_path / "cut.csv", torn_tail="drop")
    assert sum(len(u.history) for u in kept.users) == line - 2  # the header and the torn row are not posts
    whole = load_posts_csv(tmp_path / "cut.csv", torn_tail="keep")
    assert whole.users[-1].history[-1].text.endswith("第" + str(line - 2) + "条：")


def test_posts_csv_cut_mid_character_says_truncated(tmp_path):
    data = _export(_ROWS)
    cut = data.rindex("通勤".encode("gb18030"), 0, 2000) + 1  # half of a two-byte character
    (tmp_path / "cut.csv").write_bytes(data[:cut])
    with pytest.raises(DataFormatError, match=r"cut\.csv line \d+: .*ends mid-character.*truncated"):
        load_posts_csv(tmp_path / "cut.csv")
    with pytest.raises(DataFormatError, match=r"ends mid-character.*truncated"):
        load_posts_csv(tmp_path / "cut.csv", encoding="gb18030")


def test_posts_csv_cut_inside_a_quoted_cell_is_an_error(tmp_path):
    rows = [*_ROWS[:3], ("2001", '第一行\n第二行，带逗号, 和 "引号"\n第三行'), *_ROWS[3:5]]
    data = _export(rows)
    cut = data.index(
        "第二行".encode("gb18030")
    )  # right after the cell's first line break: ends with a newline
    assert data[:cut].endswith(b"\n")
    (tmp_path / "q.csv").write_bytes(data[:cut])
    with pytest.raises(DataFormatError, match=r"q\.csv line 5: the file ends inside a quoted cell"):
        load_posts_csv(tmp_path / "q.csv")
    (tmp_path / "whole.csv").write_bytes(data)  # the same multi-line cell, complete, loads
    assert "第三行" in load_posts_csv(tmp_path / "whole.csv").users[3].history[0].text


def test_posts_csv_short_row_names_the_missing_field(tmp_path):
    (tmp_path / "s.csv").write_bytes(
        "userid,text,time\n1,你好,2024-03-01 10:00\n2,没有时间\n".encode("gb18030")
    )
    with pytest.raises(DataFormatError, match=r"s\.csv line 3, field 'time': 2 cells for 3 columns"):
        load_posts_csv(tmp_path / "s.csv")


def test_posts_csv_encoding_auto_is_strict_both_ways(tmp_path):
    (tmp_path / "gb.csv").write_bytes(_export(_ROWS[:3]))
    (tmp_path / "u8.csv").write_bytes(_export(_ROWS[:3], encoding="utf-8-sig"))
    for name in ("gb.csv", "u8.csv"):
        for enc in ("auto", "AUTO"):
            data = load_posts_csv(tmp_path / name, encoding=enc)
            assert data.users[0].history[0].text == _ROWS[0][1]
    assert load_posts_csv(tmp_path / "gb.csv").topics[0].hashtag == "油价今晚上调"  # "auto" is the default


def test_utf8_csv_read_as_gb18030_suggests_utf8(tmp_path):
    # GB18030 decodes this UTF-8 file without an error — into mojibake — so it must be refused, with the hint
    (tmp_path / "u8.csv").write_bytes(_export(_ROWS[:3], encoding="utf-8"))
    with pytest.raises(
        DataFormatError, match=r'u8\.csv line 2: .*it looks like UTF-8: pass encoding="utf-8"'
    ):
        load_posts_csv(tmp_path / "u8.csv", encoding="gb18030")
    # and when GB18030 does fail on the UTF-8 bytes, the error hints UTF-8 as the UTF-8 one hints GB18030
    (tmp_path / "u8b.csv").write_bytes("userid,text\n1,中\n".encode())
    with pytest.raises(
        DataFormatError, match=r'u8b\.csv line 2: not gb18030 .*it looks like UTF-8: pass encoding="utf-8"'
    ):
        load_posts_csv(tmp_path / "u8b.csv", encoding="gb18030")


def test_daily_posts_merge_into_one_history_per_user(tmp_path):
    (tmp_path / "2024-03-02.csv").write_bytes(_export([("7", "#油价今晚上调# 第二天还在涨"), ("8", "看戏")]))
    (tmp_path / "2024-03-01.csv").write_bytes(_export([("7", "#油价今晚上调# 又涨了"), ("9", "#航天# 骄傲")]))
    data = load_daily_posts(tmp_path)
    assert [u.user_id for u in data.users] == ["7", "9", "8"]  # first appearance, days in order
    seven = data.users[0].history
    assert [(p.created_at, p.post_id) for p in seven] == [
        ("2024-03-01", "2024-03-01-L2"),
        ("2024-03-02", "2024-03-02-L2"),
    ]
    assert [t.hashtag for t in data.topics] == ["油价今晚上调", "航天"]
    assert sum(r.topic_id == data.topics[0].topic_id for r in data.responses) == 2
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "all.csv").write_bytes(_export([("1", "x")]))
    with pytest.raises(DataFormatError, match=r"all\.csv: no date"):
        load_daily_posts(tmp_path)


def test_day_from_filename():
    assert day_from_filename("weibo_20200123.csv") == "2020-01-23"
    assert day_from_filename("/x/2020_01_23.csv") == "2020-01-23"
    with pytest.raises(DataFormatError, match=r"20201323\.csv: '20201323' in the file name is not a date"):
        day_from_filename("20201323.csv")


# ---------------------------------------------------------------------------------------------- LaMP


def test_lamp7_questions_and_golds_become_cases():
    cases = load_lamp(FIX / "lamp" / "lamp7_dev_questions.json", FIX / "lamp" / "lamp7_dev_outputs.json")
    assert [c.case_id for c in cases] == ["lamp-600", "lamp-601"]
    c = cases[0]
    assert (
        c.topic.category == "LaMP_7"
        and c.topic.news == 'I\'m currently enjoying the album "Listen to Eason Chan."'
    )
    assert [p.text for p in c.user.history] == [
        "SARS .. H1N1 .. now this. stay safe everyone",
        "new album on repeat all day",
    ]
    assert c.response.text == "Listening to Eason Chan's album and loving it"
    for case in cases:
        validate_case(case.to_dict())


def test_lamp4_profile_keeps_the_article_as_what_the_title_answers():
    (c,) = load_lamp(FIX / "lamp" / "lamp4_dev_questions.json", FIX / "lamp" / "lamp4_dev_outputs.json")
    h = c.user.history[0]
    assert h.text == "Five Ways To Keep Your Family Safe Online" and h.created_at == "2014-05-02"
    assert h.retweet.text.startswith("Simple steps every parent")
    assert c.topic.news.startswith("Parents worry") and c.response.text.startswith("Social Media Gone Awry")
    assert load_lamp(FIX / "lamp" / "lamp4_dev_questions.json")[0].response.text == ""  # test split: no golds


def test_lamp_mismatched_ids_are_errors(tmp_path):
    (tmp_path / "o.json").write_text(json.dumps({"task": "LaMP_7", "golds": [{"id": "600", "output": "x"}]}))
    with pytest.raises(
        DataFormatError, match=r"lamp7_dev_questions\.json line \d+, field '\[1\]\.id': question id '601'"
    ):
        load_lamp(FIX / "lamp" / "lamp7_dev_questions.json", tmp_path / "o.json")
    q = json.loads((FIX / "lamp" / "lamp7_dev_questions.json").read_text())
    del q[1]["profile"][0]["text"]
    (tmp_path / "q.json").write_text(json.dumps(q, indent=1))
    with pytest.raises(DataFormatError, match=r"field '\[1\]\.profile\[0\]\.text': missing"):
        load_lamp(tmp_path / "q.json")


# ---------------------------------------------------------------------------------------------- SMPD / TPIC


def test_smpd_row_aligned_files():
    df = load_smpd(FIX / "smpd")
    assert list(df.columns[: len(SMP_COLUMNS)]) == list(SMP_COLUMNS)
    assert df["uid"].tolist() == ["59@N75", "59@N75", "70478@N10"] and df["pid"].tolist() == [
        "775",
        "776",
        "564687",
    ]
    assert df["popularity"].tolist() == [3.2, 0.85, 7.41]
    assert df.loc[2, "tags"] == ["rain", "paris", "umbrella", "street"] and df.loc[1, "tags"] == []
    assert df.loc[0, "postdate"] == 1457068974 and df.loc[0, "geoaccuracy"] == 16
    assert df.loc[2, "category"] == "Whether&Season" and df.loc[2, "image"] == "train/70478@N10/564687.jpg"
    assert df.loc[0, "user_description"] == [0.12, 0.0, -0.33] and df.loc[2, "pathalias"] == "parisrain"
    assert (df["source"] == "SMPD").all()


def test_smpd_misaligned_rows_are_named(tmp_path):
    shutil.copytree(FIX / "smpd", tmp_path / "smpd")
    text = json.loads((tmp_path / "smpd" / "train_text.json").read_text())
    text[1]["Pid"] = 999
    write_jsonl(tmp_path / "smpd" / "train_text.json", text)  # JSON Lines works too
    with pytest.raises(
        DataFormatError, match=r"train_text\.json line 2, field 'Pid': pid '999' does not match row 2"
    ):
        load_smpd(tmp_path / "smpd")
    (tmp_path / "smpd" / "train_text.json").unlink()
    (tmp_path / "smpd" / "train_label.txt").write_text("3.2\n0.85\n")
    with pytest.raises(DataFormatError, match=r"train_label\.txt: 2 rows, but train_category\.json has 3"):
        load_smpd(tmp_path / "smpd")
    (tmp_path / "smpd" / "train_label.txt").write_text("3.2\nhigh\n1\n")
    with pytest.raises(DataFormatError, match=r"train_label\.txt line 2: expected a float label"):
        load_smpd(tmp_path / "smpd")
    (tmp_path / "smpd" / "train_label.txt").unlink()
    assert load_smpd(tmp_path / "smpd")["popularity"].isna().all()  # a test split has no labels
    (tmp_path / "smpd" / "train_label.json").write_text(
        '[{"Uid": "59@N75", "Pid": 775, "label": 3.2}, {"label": "0.5"}, {"Label": null}]'
    )
    assert load_smpd(tmp_path / "smpd")["popularity"].tolist()[:2] == [3.2, 0.5]


def test_smhp2018_and_tpic2017():
    df = load_smpd(FIX / "smhp2018")
    assert (df["source"] == "SMHP2018").all() and df["popularity"].tolist() == [3.2, 5.75]
    assert df.loc[1, "title"] == "Summit at dawn" and df.loc[1, "tags"] == [
        "hiking",
        "alps",
        "summit",
        "sunrise",
    ]
    assert (
        df.loc[1, "latitude"] == 46.5 and df.loc[1, "longitude"] == 7.9 and df.loc[1, "pathalias"] == "alpine"
    )

    tp = load_tpic2017(FIX / "tpic2017")
    assert list(tp.columns[: len(SMP_COLUMNS)]) == list(SMP_COLUMNS)
    assert tp["pid"].tolist() == ["9624", "1187"] and tp["user_avgview"].tolist() == [2.9, 5.1]
    assert tp.loc[0, "postdate"] == int(dt.datetime(2016, 3, 4, 10, tzinfo=dt.timezone.utc).timestamp())
    assert tp.loc[1, "postdate"] == int(
        dt.datetime(2015, 12, 31, 22, tzinfo=dt.timezone.utc).timestamp()
    )  # 10pm bucket
    assert (
        tp.loc[1, "image"].endswith("1187_b.jpg")
        and tp.loc[0, "title"] == ""
        and math.isnan(tp.loc[0, "latitude"])
    )


def test_smhp2018_wrong_column_count(tmp_path):
    (tmp_path / "train_data.txt").write_text('"25@N92" "9624" "Animal"\n')
    with pytest.raises(DataFormatError, match=r"train_data\.txt line 1: 3 columns, expected 15"):
        load_smpd(tmp_path)


# ---------------------------------------------------------------------------------------------- PopALM


def test_popalm_threads_and_pairs():
    threads = load_popalm_sft(FIX / "popalm" / "sft_dev.json", n_replies=10)
    assert len(threads) == 2 and threads[0].resp[0] == "感谢认领."
    pairs = load_popalm_pairs(FIX / "popalm" / "rm_dev.json")
    assert [p.preferred for p in pairs] == ["j", "k", "j"] and pairs[0].text_j_like == 266
    topics, responses = popalm_to_schema(threads)
    assert topics[0].hashtag == "赵露思秋日穿搭" and len(responses) == 20
    assert responses[0].post.post_id.endswith("-r0") and responses[0].topic_id == topics[0].topic_id


def test_popalm_errors(tmp_path):
    (tmp_path / "sft.json").write_text('{"weibo": "a", "resp": ["x"]}\n{"weibo": "b", "resp": "x"}\n')
    with pytest.raises(DataFormatError, match=r"sft\.json line 2, field 'resp': expected list, got str"):
        load_popalm_sft(tmp_path / "sft.json")
    with pytest.raises(DataFormatError, match=r"line 1, field 'resp': 1 replies, expected 10"):
        load_popalm_sft(tmp_path / "sft.json", n_replies=10)
    (tmp_path / "rm.json").write_text('{"weibo": "a", "text_j": "x", "text_k": "y", "text_j_like": "3"}\n')
    with pytest.raises(DataFormatError, match=r"rm\.json line 1, field 'text_k_like': missing"):
        load_popalm_pairs(tmp_path / "rm.json")
