"""Each idea is defined once in the library (grep-able), so a fix lands everywhere at once.

These tests read the source: a second copy of the hashtag rule, the crowd bootstrap, the replies layout, the SFT
config or the persona parser makes one fail, naming where the copy is. An alias (``old_name = new_name``) is fine:
it defines nothing.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "socialalign_lib"
SOURCES = {
    p.relative_to(LIB.parent).as_posix(): p.read_text(encoding="utf-8") for p in sorted(LIB.rglob("*.py"))
}


def _where(pattern: str) -> list[str]:
    """``file:line`` of every source line matching ``pattern`` (a regex)."""
    rx = re.compile(pattern)
    return [
        f"{name}:{i}"
        for name, text in SOURCES.items()
        for i, line in enumerate(text.splitlines(), 1)
        if rx.search(line)
    ]


@pytest.mark.parametrize(
    "what, pattern, expected",
    [
        # the hashtag rule: clean.HASHTAG, and no other module compiles a '#…#' pattern of its own
        (
            "the hashtag pattern",
            re.escape(r"#([^#\s](?:[^#\n]{0,62}[^#\s])?)#"),
            ["socialalign_lib/data/text.py"],
        ),
        (
            "the crowd bootstrap's multinomial draw",
            r"\.multinomial\(",
            ["socialalign_lib/crowd/divergences.py"],
        ),
        ("the replies layout", r"^def \w*replies_path\(", ["socialalign_lib/generate/paths.py"]),
        ("the replies folder name", r"/ \"replies\"|'replies' /|\"replies\" /", []),
        ("SFTConfig", r"^class SFTConfig\b", ["socialalign_lib/train/sft.py"]),
        ("the persona parser", r"^def parse_persona(_text)?\(", ["socialalign_lib/data/persona_text.py"] * 2),
        ("the persona labels", r"兴趣话题\|", []),
    ],
)
def test_each_idea_is_defined_once(what, pattern, expected):
    found = _where(pattern)
    assert [f.split(":")[0] for f in found] == expected, f"{what} is defined at {found}"


def test_no_module_outside_clean_compiles_a_hashtag_regex():
    hashtag_like = re.compile(r"re\.compile\(r?[\"'][^\"']*#[(\[]?\[\^#")
    found = [
        f"{n}:{i}"
        for n, text in SOURCES.items()
        if n != "socialalign_lib/data/text.py"
        for i, line in enumerate(text.splitlines(), 1)
        if hashtag_like.search(line)
    ]
    assert found == [], f"hashtag patterns outside clean.HASHTAG: {found}"


def test_popalm_sft_config_is_the_trl_sft_config():
    from socialalign_lib.popalm.sft import SFTConfig
    from socialalign_lib.popularity.smp_llm_train import SFTRunConfig

    assert issubclass(SFTConfig, SFTRunConfig)


def test_replies_path_names_are_aliases_of_one_function():
    from socialalign_lib import cli, evaluation, run_files

    assert cli.default_replies_path is run_files.replies_path is evaluation.replies_path


def test_no_library_module_imports_the_cli():
    """The CLI sits on top: generation, evaluation and the rest never import it (the old cli ↔ evaluation circle)."""
    importers = []
    for name, text in SOURCES.items():
        if name.startswith("socialalign_lib/cli/") or name in (
            "socialalign_lib/cliargs.py",
            "socialalign_lib/__main__.py",
        ):
            continue
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.ImportFrom):
                continue
            module = node.module or ""
            relative_cli = node.level and (
                module.split(".")[-1] == "cli" or any(a.name == "cli" for a in node.names)
            )
            if relative_cli or module == "socialalign_lib.cli":
                importers.append(name)
    assert importers == []
