"""``socialalign`` (or ``python -m socialalign_lib``): every pipeline step as a command, for runs beyond a notebook.

    socialalign collect  --hashtag 话题 --out-dir data/generated/crawl       # crawl (WEIBO_COOKIE from the env)
    socialalign build    --size course --seed 0 --out-dir outputs/data/course-seed0
    socialalign persona  --backend openai --base-url http://localhost:8000/v1 --model Qwen/Qwen2.5-72B-Instruct \\
                         --no-require-key --max-workers 32 --out-dir outputs/personas/course-seed0
    socialalign train    --dataset outputs/data/course-seed0 --method pac_lora --output-dir outputs/runs/pac
    socialalign generate --run-dir outputs/runs/pac --dataset outputs/data/course-seed0 --split test_user
    socialalign evaluate --replies outputs/runs/pac/replies/test_user-full-seed0.jsonl --labeller world
    socialalign bench    --quick

Each command is a thin shell around the library functions the notebooks call (``pipeline.course_data``,
``records.build_dataset``, ``persona.PersonaExtractor``, ``socialllm.train_socialllm`` / ``generate_replies``,
``macro.label_replies`` + ``results.micro_metrics``), so a notebook and a command given the same settings write
the same artifacts. Options are the fields of the dataclass configs (``cli.args.DataclassArgs``), and
``--config run.toml`` gives the same fields from a file. ``train`` runs unchanged under ``torchrun`` /
``accelerate launch`` (the HF Trainer does the distribution; examples in ``configs/accelerate/``).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from socialalign_lib.generate.paths import replies_path

# Layout (the docstring above is the top-level --help text, so the layout is told here): this module assembles the
# parsers and runs a command; ``args`` turns dataclass configs into options and config files; ``common`` and
# ``inputs`` hold what several commands share; one module per command (``build``, ``persona``, ``train``,
# ``generate``, ``evaluate``; ``external``: collect and bench, which bring their own parsers).
from .args import ConfigFileError, DataclassArgs
from .build import BuildOptions, _groups_build, cmd_build
from .common import CommandError, RunOptions, _emit, _setup
from .evaluate import EvaluateOptions, cmd_evaluate
from .external import _bench, _collect
from .generate import GENERATION_HELP, GenerateOptions, _groups_generate, cmd_generate
from .inputs import BUILD_FILE as BUILD_FILE  # the build folder's layout, as the flat module exposed it
from .inputs import DATASET_DIR as DATASET_DIR
from .inputs import JSONL_DIR as JSONL_DIR
from .inputs import Source, load_cases, load_records, read_personas
from .persona import PersonaOptions, _groups_persona, cmd_persona
from .train import MODEL_HELP, TrainOptions, _groups_train, _training_arguments, cmd_train

default_replies_path = replies_path
"""Alias of :func:`socialalign_lib.run_files.replies_path` (the one replies layout), kept for callers of the CLI
module."""


@dataclass
class Command:
    """One subcommand: its help line, the function that runs it on the built configs, its option groups (imported
    only when the command is parsed, so ``--help`` stays quick), or ``delegate``: a program with its own parser."""

    help: str
    run: Callable[[dict[str, Any]], dict[str, Any]]
    groups: Callable[[], dict[str, type]] = dict
    exclude: tuple[str, ...] = ()
    fallback_help: Callable[[], dict[str, list[type]]] = dict
    extra_help: dict[str, str] | None = None
    epilog: str = ""
    delegate: Callable[[list[str]], int] | None = None


COMMANDS: dict[str, Command] = {
    "collect": Command(
        "crawl Weibo (or the local mock) into JSONL; its own options: socialalign collect --help",
        run=dict,
        delegate=_collect,
    ),
    "build": Command(
        "world or real cases -> SocialAlign records (DatasetDict + JSONL per split)",
        cmd_build,
        _groups_build,
        exclude=("source.size", "source.seed", "source.users"),
    ),
    "persona": Command(
        "persona extraction (statistical | openai | hf) with a resumable cache",
        cmd_persona,
        _groups_persona,
        exclude=("source.split",),
    ),
    "train": Command(
        "train PAC-LoRA / LoRA (SFT) and write the adapter; torchrun / accelerate launch ready",
        cmd_train,
        _groups_train,
        exclude=("model.sft.output_dir",),
        fallback_help=lambda: {"model": _training_arguments()},
        extra_help=MODEL_HELP,
        epilog="Multi-GPU: torchrun --nproc_per_node 4 -m socialalign_lib train ... or "
        "accelerate launch --config_file configs/accelerate/ddp.yaml -m socialalign_lib train ...",
    ),
    "generate": Command(
        "bulk reply generation, resumable (JSONL written batch by batch)",
        cmd_generate,
        _groups_generate,
        extra_help=GENERATION_HELP,
    ),
    "evaluate": Command(
        "micro metrics of a replies file (sentiment, ROUGE, BLEU, distinct, persona)",
        cmd_evaluate,
        lambda: {"evaluate": EvaluateOptions},
    ),
    "bench": Command(
        "benchmarks (benchmarks/run.py); its own options: socialalign bench --help", run=dict, delegate=_bench
    ),
}


def _top_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="socialalign", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        sub.add_parser(name, help=cmd.help)
    return ap


def command_parser(name: str) -> tuple[argparse.ArgumentParser, DataclassArgs]:
    """The full parser of one command (its config groups imported only now, so ``--help`` stays quick)."""
    cmd = COMMANDS[name]
    groups = {**cmd.groups(), "run": RunOptions}
    args = DataclassArgs(
        groups, fallback_help=cmd.fallback_help(), exclude=cmd.exclude, extra_help=cmd.extra_help
    )
    ap = argparse.ArgumentParser(
        prog=f"socialalign {name}",
        description=(cmd.run.__doc__ or cmd.help).strip(),
        epilog=cmd.epilog or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    args.add_to(ap)
    return ap, args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    name = argv[0]
    if name not in COMMANDS:
        top.error(f"unknown command {name!r}; choose from {', '.join(COMMANDS)}")
    cmd = COMMANDS[name]
    if cmd.delegate is not None:
        return cmd.delegate(argv[1:])
    ap, args = command_parser(name)
    ns = ap.parse_args(["--verbose" if a == "-v" else a for a in argv[1:]])
    try:
        configs = args.build(ns)
    except (ConfigFileError, ValueError, TypeError) as err:
        ap.error(str(err))
    try:
        with _setup(configs["run"]):
            summary = cmd.run(configs)
    except Exception as err:  # one clear line, not a traceback (which -v / --verbose adds)
        expected = isinstance(err, _USER_ERRORS) or _is_user_error(err)
        if configs["run"].verbose:
            traceback.print_exc()
        text = " ".join(str(err).split()) or type(err).__name__
        hint = (
            "" if expected or configs["run"].verbose else f" ({type(err).__name__}; -v shows the traceback)"
        )
        print(f"socialalign {name}: {text}{hint}", file=sys.stderr)
        return 2 if expected else 1
    _emit({"command": name, **summary})
    return 0


_USER_ERRORS: tuple[type[BaseException], ...] = (
    CommandError,
    ConfigFileError,
    FileNotFoundError,
    PermissionError,
)


def _is_user_error(err: BaseException) -> bool:
    """Errors about the inputs, which carry their own message (file, line, field): exit 2, like a usage error."""
    from socialalign_lib.build.records.template import RecordError
    from socialalign_lib.data.errors import DataFormatError, OutputLockedError
    from socialalign_lib.data.persona_text import PersonaError
    from socialalign_lib.train.run_folder import SocialLLMError

    return isinstance(err, (DataFormatError, OutputLockedError, PersonaError, RecordError, SocialLLMError))


__all__ = [
    "COMMANDS",
    "BuildOptions",
    "CommandError",
    "EvaluateOptions",
    "GenerateOptions",
    "PersonaOptions",
    "RunOptions",
    "Source",
    "TrainOptions",
    "command_parser",
    "default_replies_path",
    "load_cases",
    "load_records",
    "main",
    "read_personas",
]
