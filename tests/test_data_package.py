"""The data package: the schema dataclasses are the one source of the validation specs and the ``datasets``
features, the old flat import paths still work, and the core modules import no old path (no io ↔ clean circle).
"""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from socialalign_lib.data import hf, validate
from socialalign_lib.data.errors import DataFormatError
from socialalign_lib.data.schema import (
    RECORD_TYPES,
    Case,
    Persona,
    Post,
    RecordParts,
    Response,
    Topic,
    User,
    record_fields,
)

NONE = type(None)
ROOT = Path(__file__).resolve().parents[1]

# What each record accepted before the specs were derived from the dataclasses (the hand-written specs of the old
# ``io.py``): field → (accepted types, required), in this order. The derived specs must say exactly this.
CONTRACT = {
    Topic: {
        "topic_id": (str, True),
        "hashtag": (str, True),
        "news": (str, True),
        "category": (str, True),
        "time": (str, True),
    },
    Post: {
        "post_id": (str, True),
        "user_id": (str, True),
        "text": (str, True),
        "created_at": (str, True),
        "hashtags": (list, False),
        "retweet": ((dict, NONE), False),
        "likes": (int, False),
        "reposts": (int, False),
        "comments": (int, False),
        "screen_name": ((str, NONE), False),
        "image_caption": ((str, NONE), False),
        "image_features": ((list, NONE), False),
    },
    User: {
        "user_id": (str, True),
        "screen_name": (str, True),
        "history": (list, True),
        "gender": ((str, NONE), False),
        "location": ((str, NONE), False),
        "description": ((str, NONE), False),
        "followers": (int, False),
        "persona": ((dict, NONE), False),
    },
    Persona: {
        name: (str, True)
        for name in ("interests", "language_style", "emotional_tone", "personality", "values")
    },
    Response: {
        "topic_id": (str, True),
        "post": (dict, True),
        "sentiment": (str, True),
        "split": (str, False),
    },
    Case: {
        "case_id": (str, True),
        "topic": (dict, True),
        "user": (dict, True),
        "response": (dict, True),
        "sentiment": (str, True),
        "split": (str, False),
        "record_parts": ((dict, NONE), False),
    },
    RecordParts: {
        "user_name": (str, True),
        "history": (list, True),
        "persona_text": ((str, NONE), True),
        "news": (str, True),
        "hashtag": (str, True),
        "variant": (str, True),
        "instruction": (str, True),
    },
}


def _old_features(kind: str):
    """The hand-written features of the old ``io.features_for``, column order included."""
    from datasets import Features, List, Value

    s, i = Value("string"), Value("int64")
    topic = {"topic_id": s, "hashtag": s, "news": s, "category": s, "time": s}
    post_base = {
        "post_id": s,
        "user_id": s,
        "text": s,
        "created_at": s,
        "hashtags": List(s),
        "likes": i,
        "reposts": i,
        "comments": i,
        "screen_name": s,
        "image_caption": s,
        "image_features": List(Value("float64")),
    }
    post = {**post_base, "retweet": {**post_base, "retweet": Value("null")}}
    persona = dict.fromkeys(CONTRACT[Persona], s)
    user = {
        "user_id": s,
        "screen_name": s,
        "history": List(post),
        "gender": s,
        "location": s,
        "description": s,
        "followers": i,
        "persona": persona,
    }
    return Features(
        {
            "topic": topic,
            "post": post,
            "persona": persona,
            "user": user,
            "response": {"topic_id": s, "post": post, "sentiment": s, "split": s},
            "case": {
                "case_id": s,
                "topic": topic,
                "user": user,
                "response": post,
                "sentiment": s,
                "split": s,
            },
        }[kind]
    )


@pytest.mark.parametrize("cls", list(CONTRACT), ids=lambda c: c.__name__)
def test_derived_validation_spec_is_the_old_contract(cls):
    assert list(validate.spec_for(cls).items()) == list(CONTRACT[cls].items())


@pytest.mark.parametrize("kind", sorted(RECORD_TYPES))
def test_derived_features_are_the_old_features_in_the_same_column_order(kind):
    new, old = hf.features_for(kind), _old_features(kind)
    assert new == old
    assert new.arrow_schema.equals(old.arrow_schema)  # dict equality ignores order; the Arrow schema does not


def _valid(kind: str) -> dict:
    post = {
        "post_id": "p1",
        "user_id": "u1",
        "text": "#话题# 好",
        "created_at": "2024-03-01T12:00:00",
        "hashtags": ["话题"],
        "retweet": None,
        "likes": 1,
        "reposts": 0,
        "comments": 0,
        "screen_name": "小王",
        "image_caption": None,
        "image_features": [0.5],
    }
    persona = dict.fromkeys(CONTRACT[Persona], "x")
    topic = {
        "topic_id": "t1",
        "hashtag": "话题",
        "news": "新闻",
        "category": "社会",
        "time": "2024-03-01T12:00:00",
    }
    user = {
        "user_id": "u1",
        "screen_name": "小王",
        "history": [post],
        "gender": "女",
        "location": None,
        "description": None,
        "followers": 3,
        "persona": persona,
    }
    parts = {
        "user_name": "小王",
        "history": ["a"],
        "persona_text": None,
        "news": "新闻",
        "hashtag": "话题",
        "variant": "full",
        "instruction": "...",
    }
    return {
        "topic": topic,
        "post": post,
        "persona": persona,
        "user": user,
        "response": {"topic_id": "t1", "post": post, "sentiment": "neutral", "split": "train"},
        "case": {
            "case_id": "c1",
            "topic": topic,
            "user": user,
            "response": post,
            "sentiment": "neutral",
            "split": "train",
            "record_parts": parts,
        },
    }[kind]


@pytest.mark.parametrize("kind", sorted(RECORD_TYPES))
def test_every_dataclass_field_is_validated(kind):
    """A field added to a dataclass but not to its validation spec would accept anything: each field here gets a
    value of a type no field accepts, and the validator must name that field."""
    cls = RECORD_TYPES[kind]
    assert validate.VALIDATORS[kind](_valid(kind)) is not None
    for f in dataclasses.fields(cls):
        record = {**_valid(kind), f.name: b"not JSON"}
        with pytest.raises(DataFormatError) as err:
            validate.VALIDATORS[kind](record)
        assert err.value.field == f.name, (kind, f.name, str(err.value))


def test_a_field_added_to_a_record_is_in_its_spec_and_features():
    """The spec and the features follow the dataclass: a new field needs no second edit."""

    @dataclasses.dataclass
    class MoodyPost(Post):
        mood: str | None = None
        scores: list[float] = dataclasses.field(default_factory=list)

    assert validate.spec_for(MoodyPost)["mood"] == ((str, NONE), False)
    assert validate.spec_for(MoodyPost)["scores"] == (list, False)
    struct = hf._struct(MoodyPost)
    assert {"mood", "scores"} <= set(struct)
    assert str(struct["scores"].feature) == str(hf._struct(Post)["image_features"].feature)


@pytest.mark.parametrize("kind", sorted(RECORD_TYPES))
def test_every_dataclass_field_is_a_dataset_column(kind):
    cls = RECORD_TYPES[kind]
    skipped = set(hf._NOT_COLUMNS.get(cls, ()))
    assert set(hf.features_for(kind)) == {f.name for f in record_fields(cls)} - skipped


def test_record_fields_refuses_an_annotation_the_specs_cannot_express():
    @dataclasses.dataclass
    class Odd:
        value: int | str

    with pytest.raises(TypeError, match="Odd.value"):
        record_fields(Odd)


# ------------------------------------------------------------------------------------------ old import paths


def test_moved_modules_are_the_same_module_objects():
    import socialalign_lib.data.persona_text
    import socialalign_lib.data.schema
    import socialalign_lib.persona_text
    import socialalign_lib.schema

    assert socialalign_lib.schema is socialalign_lib.data.schema
    assert socialalign_lib.persona_text is socialalign_lib.data.persona_text


@pytest.mark.parametrize(
    "old, private",
    [
        ("io", ["_atomic_write", "PathLike", "TypeSpec", "_line_bytes"]),
        ("clean", ["_HASHTAG", "_EMOJI"]),
        ("loaders", ["_csv_rows", "_need", "_split_numbered", "parse_persona_text"]),
    ],
)
def test_split_modules_keep_every_old_name(old, private):
    """Every name the old module listed, and the private ones other modules import, resolve at the old path."""
    import importlib

    module = importlib.import_module(f"socialalign_lib.{old}")
    for name in [*module.__all__, *private]:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


def test_old_paths_give_the_new_objects():
    from socialalign_lib import clean, io, loaders
    from socialalign_lib.data import append, encoding, read, text, write

    assert io.append_jsonl is append.append_jsonl and io.write_jsonl is write.write_jsonl
    assert clean.HASHTAG is text.HASHTAG and clean.decode_bytes is encoding.decode_bytes
    assert loaders._csv_rows is read.iter_csv_rows and loaders.extract_hashtags is text.extract_hashtags


def _imported_modules(path: Path) -> list[str]:
    """The absolute names of the modules ``path`` imports from (relative imports resolved), and of the modules
    it imports by ``from <package> import <module>``."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            mod = ".".join([*base, *([node.module] if node.module else [])])
            out += [mod, *(f"{mod}.{a.name}" for a in node.names)]
    return out


def test_core_data_modules_import_no_old_path():
    """The data modules import each other by their new paths; none imports an old flat path (``io``, ``clean``…:
    the old io ↔ clean circle), at module level or inside a function."""
    old = {f"socialalign_lib.{name}" for name in ("io", "clean", "loaders", "schema", "persona_text")}
    found = [
        f"{path.relative_to(ROOT)}: {mod}"
        for path in sorted((ROOT / "socialalign_lib" / "data").rglob("*.py"))
        for mod in _imported_modules(path)
        if mod in old
    ]
    assert found == []
    code = (
        "import sys, socialalign_lib.data.read, socialalign_lib.data.validate, socialalign_lib.data.hf, "
        "socialalign_lib.data.history; bad = [m for m in ('socialalign_lib.io', 'socialalign_lib.clean') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
