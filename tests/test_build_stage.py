"""The build stage (``socialalign_lib.build``): below the simulator and generation, old import paths kept.

Build turns cases into records; it must run on real data without the world simulator, and without loading the
generation stack. Its statistical persona backend's default dictionaries are the world's phrase banks, stored as a
resource: these tests pin that the stored copy is still what the world's lexicon gives, so persona caches and the
datasets built from them stay byte-identical.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_build_never_imports_the_world_or_generation():
    """Import every build module, extract a persona and render a dataset from hand-made cases: the simulator, the
    generation code (socialllm) and torch must stay unloaded."""
    code = textwrap.dedent("""
        import sys
        import socialalign_lib.build.pipeline, socialalign_lib.build.records, socialalign_lib.build.retrieval
        import socialalign_lib.persona, socialalign_lib.records, socialalign_lib.retrieval, socialalign_lib.pipeline
        from socialalign_lib.build.persona import PersonaExtractor, StatisticalPersonaBackend, personas_of
        from socialalign_lib.build.records import VARIANTS, build_dataset
        from socialalign_lib.schema import Case, Post, Topic, User

        history = [Post(post_id=f"p{i}", user_id="u1", text=t, created_at=f"2024-01-0{i + 1}")
                   for i, t in enumerate(["物价又涨了，太难了！", "今天的比赛太精彩了[哈哈]", "新手机真不错"])]
        user = User(user_id="u1", screen_name="小明", history=history)
        topic = Topic(topic_id="t1", hashtag="猪肉价格上涨", news="猪肉价格连续三周上涨。", category="prices",
                      time="2024-02-01T12:00:00")
        reply = Post(post_id="r1", user_id="u1", text="又涨了！", created_at="2024-02-01")
        case = Case(case_id="c1", user=user, topic=topic, response=reply, sentiment="negative", split="train")
        personas = personas_of(PersonaExtractor(StatisticalPersonaBackend()).extract_users([user]))
        ds = build_dataset([case], None, personas, variants=VARIANTS)
        assert ds["train"].num_rows == 3, ds
        loaded = sorted(m for m in sys.modules if m.startswith(("socialalign_lib.world", "socialalign_lib.socialllm",
                                                                 "socialalign_lib.models", "torch")))
        print(loaded)
    """)
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_stored_persona_dictionaries_are_the_world_lexicons():
    """The resource equals what the world's phrase banks give, in the same order (order breaks ties), and the
    default ``StatisticalConfig`` built from it is the one the backend always had. After editing the world's
    lexicon, rewrite it with ``statistical.save_world_dictionaries(socialalign_lib.world.lexicon)``."""
    from socialalign_lib.build.persona.statistical import (
        DICTIONARIES_RESOURCE,
        StatisticalConfig,
        dictionaries_json,
        world_dictionaries,
    )
    from socialalign_lib.world import lexicon

    want = world_dictionaries(lexicon)
    stored = (ROOT / "socialalign_lib" / DICTIONARIES_RESOURCE).read_text(encoding="utf-8")
    assert stored == dictionaries_json(want), (
        "rewrite it with save_world_dictionaries(socialalign_lib.world.lexicon)"
    )
    cfg = StatisticalConfig()
    got = {k: getattr(cfg, k) for k in want if k != "value_profiles"}
    got["value_profiles"] = [vars(p) for p in cfg.value_profiles]
    assert json.dumps(got, ensure_ascii=False) == json.dumps(want, ensure_ascii=False)
    # a fresh copy per config: editing one config's dictionaries must not leak into the defaults
    cfg.category_keywords["tech"].append("edited")
    cfg.value_profiles[0].markers.append("edited")
    assert StatisticalConfig().category_keywords == want["category_keywords"]
    assert vars(StatisticalConfig().value_profiles[0]) == want["value_profiles"][0]


def test_old_import_paths_are_the_build_modules():
    import socialalign_lib.build.persona as persona
    import socialalign_lib.build.pipeline as pipeline
    import socialalign_lib.build.records as records
    import socialalign_lib.build.retrieval as retrieval
    from socialalign_lib import persona as old_persona
    from socialalign_lib import pipeline as old_pipeline
    from socialalign_lib import records as old_records
    from socialalign_lib import retrieval as old_retrieval

    assert (old_persona, old_records, old_retrieval, old_pipeline) == (persona, records, retrieval, pipeline)
    # private helpers of the old flat modules are still found
    from socialalign_lib.persona import _fit, _redact  # noqa: F401
    from socialalign_lib.records import _encode_with_spans, _SpanWriter  # noqa: F401


def test_build_from_world_is_the_build_half_of_course_data(tiny_world, tiny_course):
    """What ``models.background_corpus`` and anything else with its own world reuse: the same personas and
    records as ``course_data``, restricted by the same config overrides."""
    from socialalign_lib.build.pipeline import build_from_world

    dataset, personas = build_from_world(tiny_world, variants=("full",))
    assert {k: r.to_dict() for k, r in personas.items()} == {
        k: r.to_dict() for k, r in tiny_course.personas.items()
    }
    for split in tiny_course.dataset:
        assert dataset[split].to_list() == tiny_course.split(split, "full").to_list()


def test_build_from_cases_gives_the_world_path_s_records_for_the_world_s_cases(tiny_world):
    """The CLI's path (cases, personas extracted only for users that lack one) and the notebooks' path (a world)
    render the same records: one build, two entries."""
    from socialalign_lib.build.pipeline import CourseDataConfig, build_from_cases, build_from_world

    from_world = build_from_world(tiny_world, variants=("full",)).dataset
    from_cases = build_from_cases(tiny_world.cases(), CourseDataConfig(variants=("full",)))
    assert sorted(from_cases) == sorted(from_world)
    for split in from_world:
        assert from_cases[split].to_list() == from_world[split].to_list(), split
