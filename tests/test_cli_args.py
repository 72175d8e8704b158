"""Option help is read from where the code documents a field, also after ``ruff format`` has wrapped the field."""

from __future__ import annotations

from dataclasses import dataclass

from socialalign_lib.cli.args import field_docs


@dataclass
class _Formatted:
    """A config as ``ruff format`` leaves it: a field whose trailing comment makes the line too long is wrapped."""

    wrapped: str | None = (
        None  # a field whose comment is long enough that ruff format puts its value and comment on their own line
    )
    plain: int = 0  # one line
    documented: float = 1.0
    """An attribute docstring."""


def test_comment_of_a_wrapped_field_is_its_help():
    assert field_docs(_Formatted) == {
        "wrapped": "a field whose comment is long enough that ruff format puts its value and comment on their own line",
        "plain": "one line",
        "documented": "An attribute docstring.",
    }


def test_every_option_group_of_the_cli_documents_every_field():
    """The CLI's own option groups (formatted by ruff): every field has help (the slow ``test_cli`` checks the
    whole parsers, with the library configs)."""
    from socialalign_lib.cli import (
        BuildOptions,
        EvaluateOptions,
        GenerateOptions,
        PersonaOptions,
        RunOptions,
        Source,
        TrainOptions,
    )

    for cls in (
        RunOptions,
        Source,
        BuildOptions,
        PersonaOptions,
        TrainOptions,
        GenerateOptions,
        EvaluateOptions,
    ):
        docs = field_docs(cls)
        missing = [f for f in cls.__dataclass_fields__ if not docs.get(f)]
        assert missing == [], f"{cls.__name__}: no help for {missing}"
