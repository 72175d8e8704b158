"""Storage never loses data; loading errors name file, line and field."""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socialalign_lib.data.append import append_jsonl, repair_jsonl_tail
from socialalign_lib.data.errors import DataFormatError
from socialalign_lib.data.hf import features_for, load_dataset_jsonl, load_dataset_parquet, to_dataset
from socialalign_lib.data.read import iter_json_records, read_json, read_jsonl, read_parquet, read_text
from socialalign_lib.data.schema import Case, Persona, Post, Topic, User
from socialalign_lib.data.validate import load_cases, load_topics, load_users, validate_case, validate_user
from socialalign_lib.data.write import write_json, write_jsonl, write_parquet, write_text


def _post(i: int, **kw) -> Post:
    return Post(
        post_id=f"p{i}",
        user_id="u1",
        text=f"第{i}条微博 #话题#",
        created_at="2024-03-01T12:00:00",
        hashtags=["话题"],
        **kw,
    )


def _user(n_history: int = 3) -> User:
    return User(
        user_id="u1",
        screen_name="小明",
        history=[_post(i) for i in range(n_history)],
        gender="男",
        persona=Persona("科技", "随意", "积极", "乐观", "公平"),
    )


def _case() -> Case:
    topic = Topic("t1", "油价上涨", "油价今日上调。", "经济", "2024-03-01T12:00:00")
    retweeted = _post(99)
    return Case("c1", topic, _user(), _post(7, retweet=retweeted, likes=3), "negative", "test_user")


def _tmp_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ---------------------------------------------------------------------------------------------- writing


def test_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "x.jsonl"
    write_jsonl(path, [{"a": 1}, {"a": 2}])
    before = path.read_bytes()
    with pytest.raises(DataFormatError, match=r"x\.jsonl line 2: record 1 cannot be written as JSON"):
        write_jsonl(path, [{"a": 3}, {"a": {4, 5}}, {"a": 6}])  # a set is not JSON
    assert path.read_bytes() == before
    with pytest.raises(DataFormatError, match="cannot be written"):
        write_jsonl(path, [{"a": math.nan}])  # NaN is not JSON either
    with pytest.raises(DataFormatError):
        write_json(tmp_path / "x.jsonl", {"a": object()})
    with pytest.raises(Exception):  # noqa: B017 - whatever pyarrow raises, the old file must survive
        write_parquet(tmp_path / "x.jsonl", [{"a": 1}, {"a": "mixed"}])
    assert path.read_bytes() == before
    assert _tmp_files(tmp_path) == []


def test_records_that_fail_midway_through_a_generator_leave_nothing(tmp_path):
    def records():
        yield {"ok": 1}
        raise RuntimeError("upstream failed")

    with pytest.raises(RuntimeError):
        write_jsonl(tmp_path / "new.jsonl", records())
    assert list(tmp_path.iterdir()) == []


def test_output_is_canonical_and_byte_identical(tmp_path):
    a = [{"b": 1, "a": "中文 😀", "c": {"y": [1, 2], "x": None}}, _case()]
    b = [{"c": {"x": None, "y": [1, 2]}, "a": "中文 😀", "b": 1}, _case()]
    write_jsonl(tmp_path / "a.jsonl", a)
    write_jsonl(tmp_path / "b.jsonl", b)
    raw = (tmp_path / "a.jsonl").read_bytes()
    assert raw == (tmp_path / "b.jsonl").read_bytes()
    assert raw.split(b"\n")[0] == '{"a":"中文 😀","b":1,"c":{"x":null,"y":[1,2]}}'.encode()
    write_json(tmp_path / "m.json", {"z": 1, "a": [1.5]})
    assert (tmp_path / "m.json").read_text(encoding="utf-8") == '{\n  "a": [\n    1.5\n  ],\n  "z": 1\n}\n'


def test_written_files_are_not_private(tmp_path):
    mode = stat.S_IMODE(write_text(tmp_path / "t.txt", "x").stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_numpy_values_are_written_as_plain_json(tmp_path):
    import numpy as np

    write_jsonl(tmp_path / "n.jsonl", [{"i": np.int64(3), "f": np.float32(0.5), "v": np.arange(2)}])
    assert read_jsonl(tmp_path / "n.jsonl") == [{"i": 3, "f": 0.5, "v": [0, 1]}]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(st.text(), json_values, max_size=4), max_size=4))
def test_jsonl_round_trips_anything_json(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("rt") / "r.jsonl"
    write_jsonl(path, records)
    assert read_jsonl(path) == records


def test_line_separators_inside_strings_do_not_split_records(tmp_path):
    recs = [{"t": "a\u2028b\u0085c\x1cd\re\nf"}]
    write_jsonl(tmp_path / "s.jsonl", recs)
    assert read_jsonl(tmp_path / "s.jsonl") == recs


# ---------------------------------------------------------------------------------------------- reading errors


def test_truncated_line_in_the_middle_names_file_and_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "b"\n{"a": 4}\n', encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        read_jsonl(path)
    err = info.value
    assert (err.file, err.line, err.field) == (str(path), 3, None)
    assert str(err).startswith(f"{path} line 3: truncated or invalid JSON (Expecting ':' delimiter")
    # a bad line in the middle is never "repaired" away
    with pytest.raises(DataFormatError, match="line 3"):
        read_jsonl(path, torn_tail="repair")


def test_truncated_last_line_is_an_error_unless_asked_to_drop_or_repair(tmp_path, caplog):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3, "b": "\xe4\xb8')  # torn inside a UTF-8 character
    with pytest.raises(DataFormatError, match=r"line 3: truncated or invalid JSON .*no newline"):
        read_jsonl(path)
    with caplog.at_level(logging.WARNING):
        assert read_jsonl(path, torn_tail="drop") == [{"a": 1}, {"a": 2}]
    assert "torn last line" in caplog.text
    assert path.read_bytes().endswith(b"\xb8")  # drop does not touch the file
    assert read_jsonl(path, torn_tail="repair") == [{"a": 1}, {"a": 2}]
    assert path.read_bytes() == b'{"a": 1}\n{"a": 2}\n'


def test_gb18030_file_read_as_utf8_suggests_gb18030(tmp_path):
    path = tmp_path / "gb.jsonl"
    path.write_bytes('{"text": "hello"}\n{"text": "油价上涨了"}\n'.encode("gb18030"))
    with pytest.raises(DataFormatError) as info:
        read_jsonl(path)
    msg = str(info.value)
    assert info.value.line == 2
    assert msg.startswith(f"{path} line 2: not UTF-8 (byte 0xd3 at offset 28)")
    assert msg.endswith('it looks like GB18030: pass encoding="gb18030"')
    assert read_jsonl(path, encoding="gb18030")[1] == {"text": "油价上涨了"}
    with pytest.raises(DataFormatError, match='pass encoding="gb18030"'):
        read_text(path)


def test_bom_and_blank_lines_are_tolerated(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n   \n{"a": 2}')  # BOM, blanks, no final newline
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


def test_non_object_lines_and_field_checks(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"post": {"text": "a", "likes": 1}}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 2: expected a JSON object, got list"):
        read_jsonl(path)
    path.write_text('{"post": {"text": "a", "likes": true}}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"line 1, field 'post\.likes': expected int, got bool"):
        read_jsonl(path, types={"post.likes": int})
    with pytest.raises(DataFormatError, match=r"line 1, field 'post\.created_at': missing"):
        read_jsonl(path, required=["post.text", "post.created_at"])


# ---------------------------------------------------------------------------------------------- schema


def test_missing_history_names_line_and_field(tmp_path):
    path = tmp_path / "users.jsonl"
    good = _user().to_dict()
    bad = {k: v for k, v in good.items() if k != "history"}
    write_jsonl(path, [good, good, bad])
    with pytest.raises(DataFormatError) as info:
        load_users(path)
    assert (info.value.line, info.value.field) == (3, "history")
    assert str(info.value) == f"{path} line 3, field 'history': missing"


def test_empty_history_is_a_clear_error(tmp_path):
    rec = _user(0).to_dict()
    with pytest.raises(DataFormatError, match=r"field 'history': empty history"):
        validate_user(rec, file="u.jsonl", line=5)
    assert validate_user(rec, allow_empty_history=True).history == []


def test_nested_errors_name_the_field_path(tmp_path):
    rec = _case().to_dict()
    del rec["user"]["history"][2]["text"]
    with pytest.raises(DataFormatError) as info:
        validate_case(rec, file="data/x.jsonl", line=17)
    assert str(info.value) == "data/x.jsonl line 17, field 'user.history[2].text': missing"
    rec = _case().to_dict()
    rec["response"]["retweet"]["likes"] = "12"
    with pytest.raises(
        DataFormatError, match=r"field 'response\.retweet\.likes': expected int, got str \('12'\)"
    ):
        validate_case(rec)
    rec = _case().to_dict()
    rec["user"]["persona"] = {"interests": "x"}
    with pytest.raises(DataFormatError, match=r"field 'user\.persona\.language_style': missing"):
        validate_case(rec)
    with pytest.raises(DataFormatError, match=r"field 'sentiment': unknown label 'negative'"):
        validate_case(_case().to_dict(), labels=("积极", "消极", "中性"))


def test_schema_files_round_trip(tmp_path):
    case = _case()
    write_jsonl(tmp_path / "cases.jsonl", [case, case])
    assert load_cases(tmp_path / "cases.jsonl") == [case, case]
    write_jsonl(tmp_path / "topics.jsonl", [case.topic])
    assert load_topics(tmp_path / "topics.jsonl") == [case.topic]


def test_error_survives_pickling():
    err = pickle.loads(pickle.dumps(DataFormatError("missing", file="a.jsonl", line=2, field="x")))
    assert (err.file, err.line, err.field, str(err)) == (
        "a.jsonl",
        2,
        "x",
        "a.jsonl line 2, field 'x': missing",
    )
    assert str(DataFormatError("plain")) == "plain"


# ---------------------------------------------------------------------------------------------- append


def test_append_recovers_from_a_crash_torn_tail(tmp_path, caplog):
    path = tmp_path / "cache.jsonl"
    assert append_jsonl(path, [{"k": 1}, {"k": 2}]) == 2
    append_jsonl(path, [{"k": 3}])
    with open(path, "ab") as f:  # a crash in the middle of the next batch
        f.write(b'{"k":4,"text":"\xe6\xb2\xb9\xe4')
    with caplog.at_level(logging.WARNING):
        assert append_jsonl(path, [{"k": 5}]) == 1
    assert "line 4: dropped a torn last line" in caplog.text
    assert read_jsonl(path) == [{"k": 1}, {"k": 2}, {"k": 3}, {"k": 5}]


def test_a_complete_record_missing_only_its_newline_is_kept(tmp_path):
    path = tmp_path / "cache.jsonl"
    path.write_bytes(b'{"k":1}\n{"k":2}')
    assert repair_jsonl_tail(path) is None
    append_jsonl(path, [{"k": 3}])
    assert read_jsonl(path) == [{"k": 1}, {"k": 2}, {"k": 3}]


def test_append_does_not_touch_a_bad_line_in_the_middle(tmp_path):
    path = tmp_path / "cache.jsonl"
    path.write_bytes(b'{"k":1}\n{"k":\n{"k":3}\n')
    append_jsonl(path, [{"k": 4}])
    with pytest.raises(DataFormatError, match="line 2"):
        read_jsonl(path)


def test_append_serialises_the_whole_batch_before_writing(tmp_path):
    path = tmp_path / "cache.jsonl"
    append_jsonl(path, [{"k": 1}])
    with pytest.raises(DataFormatError):
        append_jsonl(path, [{"k": 2}, {"k": {3}}])
    assert read_jsonl(path) == [{"k": 1}]


# ---------------------------------------------------------------------------------------------- JSON documents


def test_json_array_records_carry_their_line(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n  {"a": 1},\n  {"a": 2}\n  {"a": 3}\n]', encoding="utf-8")
    it = iter_json_records(path)
    assert next(it) == (2, {"a": 1})
    assert next(it) == (3, {"a": 2})
    with pytest.raises(
        DataFormatError, match=r"line 4: truncated or invalid JSON array \(expected ',' or ']'"
    ):
        next(it)
    path.write_text('[{"a": 1},\n {"a": 2', encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 2: truncated or invalid JSON"):
        list(iter_json_records(path))
    path.write_text('{"a": 1}\n{"a": 2}\n', encoding="utf-8")  # JSON Lines are accepted too
    assert list(iter_json_records(path)) == [(1, {"a": 1}), (2, {"a": 2})]
    path.write_text('{\n  "task": "LaMP_7",\n  "golds": []\n}', encoding="utf-8")
    with pytest.raises(
        DataFormatError, match=r"a\.json: expected a JSON array of records .*got one JSON dict"
    ):
        list(iter_json_records(path))
    path.write_text('{"a": 1,\n "b": }', encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 2: truncated or invalid JSON"):
        read_json(path)


# ---------------------------------------------------------------------------------------------- datasets


def test_dataset_keeps_nested_fields_and_round_trips_through_parquet(tmp_path):
    case = _case()
    write_jsonl(tmp_path / "c.jsonl", [case])
    ds = load_dataset_jsonl(tmp_path / "c.jsonl")
    assert ds.features == features_for("case")
    row = ds[0]
    assert row["user"]["history"][1]["text"] == case.user.history[1].text
    assert row["response"]["retweet"]["post_id"] == "p99"
    assert Case.from_dict(row) == case
    write_parquet(tmp_path / "c.parquet", ds)
    back = load_dataset_parquet(tmp_path / "c.parquet")
    assert back.features == ds.features and back.to_list() == ds.to_list()
    df = read_parquet(tmp_path / "c.parquet")
    assert df.loc[0, "topic"]["hashtag"] == "油价上涨"


def test_explicit_features_type_all_none_columns():
    users = [_user(), User("u2", "b", [_post(1)])]
    users[0].persona = None
    ds = to_dataset(users)
    assert ds.features["persona"] == features_for("user")["persona"]
    assert [User.from_dict(r) for r in ds.to_list()] == users


def test_dataset_loader_validates(tmp_path):
    rec = _user().to_dict()
    rec["history"] = []
    write_jsonl(tmp_path / "u.jsonl", [rec])
    with pytest.raises(DataFormatError, match="line 1, field 'history': empty history"):
        load_dataset_jsonl(tmp_path / "u.jsonl")
    write_jsonl(tmp_path / "other.jsonl", [{"x": 1, "y": {"z": [1]}}])
    assert load_dataset_jsonl(tmp_path / "other.jsonl").to_list() == [{"x": 1, "y": {"z": [1]}}]


def test_parquet_from_dataframe_and_records(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"uid": ["1@N1", "2@N2"], "popularity": [3.2, 1.5]})
    write_parquet(tmp_path / "d.parquet", df)
    pd.testing.assert_frame_equal(read_parquet(tmp_path / "d.parquet"), df)
    write_parquet(tmp_path / "t.parquet", [_case().topic])
    assert read_parquet(tmp_path / "t.parquet").to_dict("records") == [_case().topic.to_dict()]
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataFormatError, match="bad.parquet: not a readable Parquet file"):
        read_parquet(tmp_path / "bad.parquet")
    assert json.loads(json.dumps(_case().to_dict()))  # the fixtures are plain JSON


# ---------------------------------------------------------------------------------------------- one writer


def test_a_second_writer_is_refused_across_processes_and_a_killed_holder_frees_the_lock(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from socialalign_lib.data.append import exclusive_output
    from socialalign_lib.data.errors import OutputLockedError

    target = tmp_path / "replies.jsonl"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from socialalign_lib.io import exclusive_output\n"
            f"with exclusive_output({str(target)!r}):\n    print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(OutputLockedError, match=r"replies\.jsonl: another process is writing"),
            exclusive_output(target),
        ):
            pass
    finally:
        holder.kill()  # as kill -9: the OS drops the lock with the process
        holder.wait()
    with exclusive_output(target):  # the resume is not blocked by the dead run
        pass


def test_replace_dir_swaps_a_whole_folder_in(tmp_path):
    from socialalign_lib.data.write import replace_dir

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old", encoding="utf-8")
    (tmp_path / "staging").mkdir()
    (tmp_path / "staging" / "new.txt").write_text("new", encoding="utf-8")
    replace_dir(tmp_path / "staging", tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
