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
the same artifacts. Options are the fields of the dataclass configs (``cliargs.DataclassArgs``), and
``--config run.toml`` gives the same fields from a file. ``train`` runs unchanged under ``torchrun`` /
``accelerate launch`` (the HF Trainer does the distribution; examples in ``configs/accelerate/``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .cliargs import ConfigFileError, DataclassArgs, to_config_dict
from .run_files import replies_path

log = logging.getLogger("socialalign")

BUILD_FILE = "build.json"
DATASET_DIR = "dataset"
JSONL_DIR = "jsonl"


class CommandError(RuntimeError):
    """A command cannot run with the given inputs (the message names the file or option)."""


# ================================================================================================ option groups


@dataclass
class RunOptions:
    """Options every command shares."""

    threads: int | None = None  # torch CPU threads (None: torch's default); 1 keeps runs bit-reproducible across machines
    progress: bool = True  # tqdm progress bars
    verbose: bool = False  # log at INFO level, and show the traceback of an error (-v)


@dataclass
class Source:
    """Where users and cases come from: the embedded world (default) or real files."""

    size: str = "course"  # world size when no --cases / --users is given: tiny, course, large
    seed: int = 0  # world seed
    cases: str | None = None  # a case JSONL (our schema) or the official SocialAlign Alpaca JSON, instead of the world
    cases_format: Literal["auto", "schema", "socialalign"] = "auto"  # auto: by the first record's keys
    users: str | None = None  # persona only: a users JSONL (our schema) or a crawl folder (its users.jsonl)
    split: str | None = None  # build only: put every case of --cases in this split (official files carry none)


@dataclass
class BuildOptions:
    out_dir: str | None = None  # output folder (default outputs/data/<size>-seed<seed>, or outputs/data/<cases file stem>)
    personas: str | None = None  # personas.jsonl (or its folder) from `socialalign persona`; default: statistical, as the notebooks
    history_filter: bool = False  # drop history posts by the official rules (clean.HistoryFilter) before retrieval


@dataclass
class PersonaOptions:
    backend: Literal["statistical", "openai", "hf"] = "statistical"  # statistical: offline; openai: any OpenAI-compatible server; hf: a local model
    out_dir: str | None = None  # folder of personas.jsonl, the resumable cache (default outputs/personas/<source>-<backend>)
    posts: int = 10  # history posts per user handed to the backend (the most recent; CourseDataConfig.persona_posts)
    max_workers: int = 1  # requests in flight at once (openai: 16-64 suit a vLLM server; hf: keep 1)
    max_attempts: int = 2  # tries per user within one run (a sampled answer sometimes does not parse)
    retry_failed: bool = False  # ask again for users whose earlier attempt is cached as failed
    hf_model: str = ""  # hf backend: local folder or hub id (default: the embedded model)
    device: str = "auto"  # hf backend: auto, cpu, cuda
    limit: int | None = None  # only the first N users (smoke runs; a later run without it does the rest)


@dataclass
class TrainOptions:
    dataset: str  # `socialalign build` output folder, a saved DatasetDict, or a records .jsonl file
    split: str = "train"  # split to train on
    eval_split: str | None = None  # split the Trainer evaluates (set --eval-strategy steps); None: none
    output_dir: str | None = None  # run folder (adapter/, socialllm.json); default: the notebooks' outputs/socialllm/...
    limit: int | None = None  # train on the first N records only (smoke runs)


@dataclass
class GenerateOptions:
    run_dir: str  # a finished `socialalign train` run folder (socialllm.json + adapter/)
    dataset: str  # `socialalign build` output folder, a saved DatasetDict, or a records .jsonl file
    split: str = "test_user"  # split whose records get replies
    variant: str | None = None  # prompt variant (default: the one the run was trained on)
    gate_mode: str | None = None  # PAC-LoRA ablation at inference: uniform, uniform_a, uniform_b (None: learned)
    out: str | None = None  # replies JSONL (default <run-dir>/replies/<split>-<variant>[-<gate-mode>]-seed<seed>.jsonl)
    limit: int | None = None  # only the first N records (a later run without it completes the rest)
    shard: int = 0  # this process's shard of the records (with --num-shards: one process per GPU)
    num_shards: int = 1  # split the records into this many shards (records shard, shard+n, shard+2n, ...)
    backend: Literal["transformers", "vllm"] = "transformers"  # vllm: plain LoRA / base runs only, needs `pip install vllm` on CUDA


@dataclass
class EvaluateOptions:
    replies: tuple[str, ...]  # replies JSONL file(s) from `socialalign generate` (shards are concatenated)
    labeller: str = "world"  # sentiment labeller of generated and real replies: world (n-gram, trained on the world's train split), lexicon, or a saved labeller .json
    size: str = "course"  # world for --labeller world and the persona histories
    seed: int = 0  # world seed
    method: str = "model"  # the method's name in the output table
    persona: bool = True  # also score persona consistency against the users' histories (world only)
    out: str | None = None  # metrics CSV (default: beside the first replies file, .metrics.csv)
    n_boot: int = 1000  # bootstrap replicates for the confidence intervals
    gold: Literal["auto", "dataset", "labeller"] = "auto"  # the real reply's label: the dataset's own (world truth, human), the labeller's, or auto (dataset's when every row has one)
    labels: tuple[str, ...] = ("negative", "neutral", "positive")  # sentiment label set


# ================================================================================================ helpers


@contextmanager
def _setup(run: RunOptions) -> Iterator[None]:
    """Logging for our own loggers only (third-party libraries keep theirs: bm25s logs every index at DEBUG),
    torch threads, and progress bars off everywhere with ``--no-progress`` (tqdm, datasets); the process-wide
    switches are put back afterwards, so ``main`` can be called in-process (tests, notebooks)."""
    env = {k: os.environ.get(k) for k in ("HF_HUB_DISABLE_TELEMETRY", "TOKENIZERS_PARALLELISM", "TQDM_DISABLE")}
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in ("socialalign_lib", "socialalign"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO if run.verbose else logging.WARNING)
        if not logger.handlers:
            logger.addHandler(handler)
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    threads = None
    if run.threads:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(run.threads)
    bars = None
    if not run.progress:
        os.environ["TQDM_DISABLE"] = "1"  # tqdm >= 4.66 reads TQDM_* defaults from the environment
        import datasets
        from transformers.utils import logging as hf_logging

        bars = (datasets.is_progress_bar_enabled(), hf_logging.is_progress_bar_enabled())
        datasets.disable_progress_bars()
        hf_logging.disable_progress_bar()  # "Loading weights" and the Trainer's bar
    try:
        yield
    finally:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        if bars is not None:
            import datasets
            from transformers.utils import logging as hf_logging

            if bars[0]:
                datasets.enable_progress_bars()
            if bars[1]:
                hf_logging.enable_progress_bar()


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _emit(summary: dict[str, Any]) -> None:
    """The command's result as one JSON line on stdout (rank 0 only), for scripts and logs."""
    if _is_main_process():
        print(json.dumps(summary, ensure_ascii=False, default=str))


def _outputs_dir() -> Path:
    from .paths import OUTPUTS_DIR

    return OUTPUTS_DIR


def load_cases(path: str | os.PathLike, fmt: str = "auto") -> list[Any]:
    """Cases from a schema case JSONL (``io.load_cases``) or the official SocialAlign Alpaca JSON
    (``loaders.load_socialalign_cases``); ``fmt="auto"`` looks at the first record's keys.

    Stricter than the library loaders, as a command has no caller to catch a mistake later: case ids must be
    unique, labels one of ``schema.SENTIMENTS`` (or empty: unlabelled), reply texts non-empty, times ISO 8601
    and text fields at most ``io.MAX_FIELD_CHARS`` long."""
    from .io import iter_json_records
    from .io import load_cases as load_schema_cases
    from .loaders import load_socialalign_cases
    from .schema import SENTIMENTS

    if fmt == "auto":
        first = next((rec for _, rec in iter_json_records(path)), None)
        if not isinstance(first, dict):
            raise CommandError(f"{path}: no records, or the first is not an object")
        fmt = "schema" if "case_id" in first else "socialalign" if "instruction" in first else ""
        if not fmt:
            raise CommandError(f"{path}: first record has neither 'case_id' (schema case) nor 'instruction' "
                               "(SocialAlign Alpaca); give --cases-format")
    if fmt == "schema":
        return load_schema_cases(path, labels=(*SENTIMENTS, ""), unique_ids=True)
    cases = load_socialalign_cases(path)
    _check_cases(cases, path)
    return cases


def _check_cases(cases: Sequence[Any], path: str | os.PathLike) -> None:
    """The checks ``io.load_cases`` makes on schema files, for cases converted from another format."""
    from .io import DataFormatError, validate_case
    from .schema import SENTIMENTS

    seen: dict[str, int] = {}
    for i, case in enumerate(cases, 1):
        where = f"{path} record {i} ({case.case_id})"
        first = seen.setdefault(case.case_id, i)
        if first != i:
            raise DataFormatError(f"duplicate case_id (first in record {first})", file=where, field="case_id")
        try:
            validate_case(case.to_dict(), file=where, labels=(*SENTIMENTS, ""), allow_empty_history=True)
        except DataFormatError as err:
            raise DataFormatError(err.problem, file=where, field=err.field) from None


def read_personas(path: str | os.PathLike) -> dict[str, Any]:
    """``user_id → Persona`` from a ``personas.jsonl`` written by :class:`persona.PersonaExtractor` (failures are
    skipped, with a warning). One backend per file: a file mixing backends is refused, as it is ambiguous."""
    from .io import read_jsonl
    from .persona import PersonaExtractor, PersonaRecord

    file = Path(path)
    if file.is_dir():
        file = file / PersonaExtractor.CACHE_NAME
    if not file.exists():
        raise CommandError(f"{file}: no personas file (run `socialalign persona` first)")
    # "drop", not "repair": a reader never rewrites the file (a persona run may be appending to it right now)
    records = [PersonaRecord.from_dict(r) for r in read_jsonl(file, torn_tail="drop")]
    backends = sorted({r.backend for r in records})
    if len(backends) > 1:
        raise CommandError(f"{file}: personas of several backends {backends}; keep one backend per folder")
    personas = {r.user_id: r.persona for r in records if r.ok}
    failed = {r.user_id for r in records if not r.ok} - set(personas)
    if failed:
        log.warning("%s: %d user(s) without a persona (failed extraction)", file, len(failed))
    return personas


def load_records(path: str | os.PathLike, split: str) -> Any:
    """One split of a ``build`` output folder / saved ``DatasetDict``, or every record of a ``.jsonl`` file."""
    p = Path(path)
    if p.is_file():
        from datasets import Dataset

        from .io import read_jsonl
        from .records import record_features

        return Dataset.from_list(read_jsonl(p), features=record_features())
    from datasets import load_from_disk

    folder = p / DATASET_DIR if (p / DATASET_DIR).is_dir() else p
    if not folder.is_dir():
        raise CommandError(f"{p}: not a `socialalign build` folder, a saved DatasetDict or a .jsonl file")
    try:
        # keep_in_memory: .filter / .map on a dataset backed by files write cache-*.arrow beside those files,
        # i.e. into the input folder; in memory they write nothing there (records are small text)
        data = load_from_disk(str(folder), keep_in_memory=True)
    except (IndexError, ValueError, FileNotFoundError) as err:
        raise CommandError(f"{folder}: cannot be loaded ({type(err).__name__}: {err}); an empty split saved by an "
                           "older `socialalign build`? build it again") from None
    if hasattr(data, "keys"):
        if split not in data:
            raise CommandError(f"{folder}: no split {split!r}; splits are {list(data.keys())}")
        return data[split]
    return data


def _build_info(dataset: str) -> dict[str, Any]:
    file = Path(dataset) / BUILD_FILE
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}


# ================================================================================================ commands


def cmd_build(c: dict[str, Any]) -> dict[str, Any]:
    """Records for every split → ``<out>/dataset`` (``DatasetDict.save_to_disk``), ``<out>/jsonl/<split>.jsonl``
    and ``<out>/build.json`` (the settings used and the split sizes; ``train`` reads the world size and seed from it
    to name its default run folder as the notebooks do)."""
    from .pipeline import course_data
    from .records import build_dataset, export_jsonl

    data, src, opt = c["data"], c["source"], c["build"]
    hfilter = None
    if opt.history_filter:
        from .clean import HistoryFilter

        hfilter = HistoryFilter()
    if src.cases is None and opt.personas is None and hfilter is None:
        dataset = course_data(data, progress=c["run"].progress).dataset  # exactly the notebooks' call
        name = f"{data.size}-seed{data.seed}"
    else:
        if src.cases is not None:
            cases = load_cases(src.cases, src.cases_format)
            name = Path(src.cases).stem
            if src.split is not None:
                for case in cases:
                    case.split = src.split
        else:
            from .world import generate_world

            cases = generate_world(size=data.size, seed=data.seed).cases()
            name = f"{data.size}-seed{data.seed}"
        personas = read_personas(opt.personas) if opt.personas else {}
        # cases read from official records keep their own persona (records.build_records renders them verbatim)
        missing = {case.user.user_id: case.user for case in cases if case.record_parts is None
                   and case.user.user_id not in personas and case.user.persona is None}
        if missing and data.persona_protocol == "user" and any(v != "without_persona" for v in data.variants):
            from .persona import PersonaExtractor, StatisticalPersonaBackend, persona_posts, personas_of

            log.warning("%d user(s) have no persona: extracting them with the statistical backend", len(missing))
            extractor = PersonaExtractor(StatisticalPersonaBackend(), cache_dir=data.persona_cache_dir)
            personas.update(personas_of(extractor.extract_users(
                missing.values(), lambda u: persona_posts(u, k=data.persona_posts), progress=c["run"].progress)))
        by_topic = None
        if data.persona_protocol == "user_topic":  # the official protocol: one persona per (user, topic)
            from .persona import PersonaExtractor, StatisticalPersonaBackend, personas_of, personas_per_topic

            extractor = PersonaExtractor(StatisticalPersonaBackend(), cache_dir=data.persona_cache_dir)
            by_topic = personas_of(personas_per_topic([c for c in cases if c.record_parts is None], extractor,
                                                      data.retrieval, hfilter, progress=c["run"].progress))
        dataset = build_dataset(cases, data.retrieval, personas, variants=data.variants, history_filter=hfilter,
                                num_proc=data.num_proc, persona_by_user_topic=by_topic)
    counts = {split: len(ds) for split, ds in dataset.items()}
    if not sum(counts.values()):
        raise CommandError(f"{src.cases or name}: no records were built"
                           + (" (--history-filter removed every case's history?)" if hfilter is not None else ""))
    out = Path(opt.out_dir) if opt.out_dir else _outputs_dir() / "data" / name
    _check_build_target(out)
    staging = out.parent / f".{out.name}.building-{os.getpid()}"
    import shutil

    from .io import replace_dir, write_json

    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        # an empty split gets one (empty) shard: with the default zero shards it is saved without a data file,
        # which load_from_disk cannot read back (IndexError)
        dataset.save_to_disk(str(staging / DATASET_DIR), num_shards={k: 1 for k, n in counts.items() if n == 0})
        export_jsonl(dataset, staging / JSONL_DIR)
        write_json(staging / BUILD_FILE, {"source": "cases" if src.cases else "world", "size": data.size,
                                          "seed": data.seed, "data": to_config_dict(data),
                                          "source_options": to_config_dict(src), "build": to_config_dict(opt),
                                          "counts": counts})
        replace_dir(staging, out)  # a kill before this leaves the old folder whole, never a mix of two builds
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"out_dir": str(out), "counts": counts}


def _check_build_target(out: Path) -> None:
    """``build`` replaces its output folder as a whole: refuse one that holds anything a build did not write."""
    if not out.exists():
        return
    if not out.is_dir():
        raise CommandError(f"--out-dir {out}: exists and is not a folder")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in (DATASET_DIR, JSONL_DIR, BUILD_FILE))
    if foreign:
        raise CommandError(f"--out-dir {out}: holds {foreign[:5]}, which a build did not write; the build replaces "
                           "the whole folder, so choose an empty or new one")


def _persona_users(src: Source, limit: int | None) -> tuple[list[Any], Any, str]:
    """(users, world or None, a name for the source)."""
    world = None
    if src.users is not None:
        p = Path(src.users)
        if p.is_dir():
            from .collect import load_crawl

            users = load_crawl(p).users
        else:
            from .io import load_users

            users = load_users(p, allow_empty_history=True)
        name = p.stem if p.is_file() else p.name
    elif src.cases is not None:
        seen: dict[str, Any] = {}
        for case in load_cases(src.cases, src.cases_format):
            seen.setdefault(case.user.user_id, case.user)
        users, name = list(seen.values()), Path(src.cases).stem
    else:
        from .world import generate_world

        world = generate_world(size=src.size, seed=src.seed)
        users, name = list(world.users), f"{src.size}-seed{src.seed}"
    return (users[:limit] if limit is not None else users), world, name


def cmd_persona(c: dict[str, Any]) -> dict[str, Any]:
    """Personas for every user into ``<out>/personas.jsonl`` (``PersonaExtractor``'s cache: re-running resumes and
    calls the backend only for users not done yet)."""
    from .io import exclusive_output
    from .persona import (
        PersonaExtractor,
        StatisticalPersonaBackend,
        persona_posts,
        persona_recovery,
        personas_of,
    )

    opt, src = c["persona"], c["source"]
    users, world, name = _persona_users(src, opt.limit)
    out = Path(opt.out_dir) if opt.out_dir else _outputs_dir() / "personas" / f"{name}-{opt.backend}"
    with exclusive_output(out / PersonaExtractor.CACHE_NAME, "persona cache"):  # refuse a second writer before
        pass  # loading a model (the extractor holds the lock for the whole run)
    if opt.backend == "openai":
        from .persona import OpenAIPersonaBackend

        backend: Any = OpenAIPersonaBackend(c["openai"])
    elif opt.backend == "hf":
        from .models import load_base_model
        from .paths import EMBEDDED_MODEL
        from .persona import HFPersonaBackend

        model_path = opt.hf_model or str(EMBEDDED_MODEL)
        model, tok = load_base_model(model_path, device=opt.device)
        hf_cfg = c["hf"]
        if hf_cfg.name == "local":
            hf_cfg.name = Path(model_path).name
        backend = HFPersonaBackend(model, tok, hf_cfg)
    else:
        backend = StatisticalPersonaBackend()
    extractor = PersonaExtractor(backend, cache_dir=out, max_attempts=opt.max_attempts, retry_failed=opt.retry_failed)
    try:
        records = extractor.extract_users(users, lambda u: persona_posts(u, k=opt.posts), progress=c["run"].progress,
                                          max_workers=opt.max_workers)
    finally:
        if hasattr(backend, "close"):
            backend.close()
    if extractor.stats["unavailable"]:
        raise CommandError(f"{extractor.stats['unavailable']} user(s) could not reach the backend and are not cached; "
                           "run the same command again to ask them")
    summary: dict[str, Any] = {"out": str(extractor.cache_path), "users": len(records),
                               "ok": sum(r.ok for r in records.values()),
                               "failed": sum(not r.ok for r in records.values()), "backend": backend.fingerprint,
                               "cache_hits": extractor.stats["hits"], "backend_calls": extractor.stats["misses"]}
    if world is not None:
        summary["recovery"] = {k: round(v, 4) for k, v in persona_recovery(personas_of(records), world).items()}
    return summary


def cmd_train(c: dict[str, Any]) -> dict[str, Any]:
    """Train a SocialLLM (``socialllm.train_socialllm``) on one split; works under ``torchrun`` / ``accelerate``."""
    from .socialllm import default_output_dir, run_name, train_socialllm

    cfg, opt = c["model"], c["train"]
    train = load_records(opt.dataset, opt.split)
    if opt.limit is not None:
        train = train.select(range(min(opt.limit, len(train))))
    n_variant = sum(v == cfg.variant for v in train["variant"]) if "variant" in train.column_names else len(train)
    if cfg.method != "base" and not n_variant:
        raise CommandError(f"{opt.dataset}: no training records of variant {cfg.variant!r} in split {opt.split!r} "
                           f"({len(train)} records in the split)")
    evals = load_records(opt.dataset, opt.eval_split) if opt.eval_split else None
    if opt.output_dir:
        out = Path(opt.output_dir)
    else:
        info = _build_info(opt.dataset)
        out = (default_output_dir(cfg, info["size"], info["seed"]) if info.get("source") == "world" and opt.limit is None
               else _outputs_dir() / "socialllm" / Path(opt.dataset).name / run_name(cfg))
    run = train_socialllm(cfg, train, out, eval_dataset=evals, progress=c["run"].progress)
    losses = run.losses()
    return {"output_dir": str(run.output_dir), "method": cfg.method, "n_train": n_variant, "loaded": run.loaded,
            "first_loss": losses[0] if losses else None, "last_loss": losses[1] if losses else None,
            "train_seconds": round(run.train_seconds, 2)}


default_replies_path = replies_path
"""Alias of :func:`socialalign_lib.run_files.replies_path` (the one replies layout), kept for callers of the CLI
module."""


def cmd_generate(c: dict[str, Any]) -> dict[str, Any]:
    """One reply per record (``socialllm.generate_replies``), appended batch by batch to a JSONL file; a re-run
    skips the records already there (resume after an interruption, or after ``--limit``)."""
    from .io import exclusive_output
    from .records import VARIANTS
    from .socialllm import (
        SocialLLMConfig,
        generate_replies,
        load_socialllm,
        read_finished_state,
        verify_adapter,
    )

    gen, opt = c["gen"], c["generate"]
    if not 0 <= opt.shard < opt.num_shards:
        raise CommandError(f"--shard must be in [0, {opt.num_shards}), got {opt.shard}")
    if opt.variant is not None and opt.variant not in VARIANTS:
        raise CommandError(f"--variant {opt.variant!r}: choose one of {list(VARIANTS)}")
    state = read_finished_state(opt.run_dir)  # cheap checks first: the model loads only once all inputs are good
    variant = opt.variant or SocialLLMConfig.from_dict(state["config"]).variant
    records = load_records(opt.dataset, opt.split)
    n_split = len(records)
    records = records.filter(lambda v: v == variant, input_columns="variant")
    if not len(records):
        raise CommandError(f"{opt.dataset}: split {opt.split!r} has no records of variant {variant!r} "
                           f"({n_split} records in the split)")
    if opt.num_shards > 1:
        records = records.select(range(opt.shard, len(records), opt.num_shards))
    if opt.limit is not None:
        records = records.select(range(min(opt.limit, len(records))))
    out = Path(opt.out) if opt.out else replies_path(opt.run_dir, opt.split, variant, gen.seed, opt.gate_mode,
                                                     opt.shard, opt.num_shards)
    if out.resolve().is_relative_to(Path(opt.dataset).resolve()):
        raise CommandError(f"--out {out}: inside the input dataset {opt.dataset}; write replies elsewhere")
    with exclusive_output(out, "replies file"):  # a second writer is refused now, before a model is loaded
        pass  # (generate_replies takes the lock again for the whole run)
    before = _count_lines(out)
    if opt.backend == "vllm":
        from .vllm_backend import generate_replies_vllm

        if SocialLLMConfig.from_dict(state["config"]).method != "base":
            verify_adapter(opt.run_dir, state)
        frame = generate_replies_vllm(opt.run_dir, records, gen, out_path=out, progress=c["run"].progress)
    else:
        run = load_socialllm(opt.run_dir)
        frame = generate_replies(run.model, run.tokenizer, records, gen, out_path=out, progress=c["run"].progress,
                                 gate_mode=opt.gate_mode)
    return {"out": str(out), "records": len(frame), "generated_now": _count_lines(out) - before,
            "already_done": before}


def _count_lines(path: Path) -> int:
    """Complete JSONL lines (a torn last line, left by a kill during a write, has no newline and is not counted)."""
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def _labeller(opt: EvaluateOptions, world: Any) -> Any:
    from .sentiment import LexiconLabeller, load_labeller, train_world_labeller

    if opt.labeller == "world":
        return train_world_labeller(world, labels=opt.labels)
    if opt.labeller == "lexicon":
        return LexiconLabeller(labels=opt.labels)
    if not Path(opt.labeller).is_file():
        raise CommandError(f"--labeller {opt.labeller!r}: not 'world', 'lexicon' or a saved labeller file")
    return load_labeller(opt.labeller)


def cmd_evaluate(c: dict[str, Any]) -> dict[str, Any]:
    """Micro metrics of a replies file per split (``macro.label_replies`` + ``results.micro_metrics``, the
    notebooks' scoring): sentiment accuracy / macro-F1, ROUGE-1/2/L, BLEU, distinct-1/2, length ratio, and
    persona consistency on the world."""
    import pandas as pd

    from .io import read_jsonl
    from .macro import REAL_COL, label_replies
    from .results import micro_metrics

    opt = c["evaluate"]
    # torn_tail="drop": an input is never rewritten (a generate run may still be appending to it)
    frame = pd.DataFrame([row for path in opt.replies for row in read_jsonl(path, torn_tail="drop")])
    if frame.empty:
        raise CommandError(f"{list(opt.replies)}: no replies")
    dup = frame.duplicated(["case_id", "variant"])
    if dup.any():
        raise CommandError(f"{list(opt.replies)}: {int(dup.sum())} duplicate (case_id, variant) row(s)")
    world = None
    if opt.labeller == "world" or opt.persona:
        from .world import generate_world

        world = generate_world(size=opt.size, seed=opt.seed)
    labelled = label_replies(frame, _labeller(opt, world))
    has_gold = frame["sentiment"].notna().all() and frame["sentiment"].astype(str).isin(opt.labels).all()
    if opt.gold == "dataset" and not has_gold:
        raise CommandError(f"--gold dataset: some replies have no label in {list(opt.labels)} (real data is often "
                           "unlabelled: use --gold labeller)")
    gold_col = "sentiment" if opt.gold == "dataset" or (opt.gold == "auto" and has_gold) else REAL_COL
    histories = None
    if opt.persona and world is not None:
        from .evaluation import histories as world_histories

        histories = world_histories(world)  # the notebooks' definition of a user's own texts
    parts = []
    for split, sub in labelled.groupby("split", sort=False):
        rows = pd.DataFrame(micro_metrics(sub, opt.labels, histories, gold_col=gold_col, n_boot=opt.n_boot,
                                          seed=opt.seed))
        rows.insert(0, "method", opt.method)
        rows.insert(1, "split", split)
        rows["n"] = len(sub)
        parts.append(rows)
    table = pd.concat(parts, ignore_index=True)
    out = Path(opt.out) if opt.out else Path(opt.replies[0]).with_suffix(".metrics.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    return {"out": str(out), "replies": len(frame), "gold": "dataset" if gold_col == "sentiment" else "labeller",
            "metrics": {f"{r.split}/{r.metric}": round(float(r.value), 4) for r in table.itertuples()}}


# ================================================================================================ registry


def _groups_build() -> dict[str, type]:
    from .pipeline import CourseDataConfig

    return {"data": CourseDataConfig, "source": Source, "build": BuildOptions}


def _groups_persona() -> dict[str, type]:
    from .persona import HFGenerationConfig, OpenAIConfig

    return {"persona": PersonaOptions, "source": Source, "openai": OpenAIConfig, "hf": HFGenerationConfig}


def _groups_train() -> dict[str, type]:
    from .socialllm import SocialLLMConfig

    return {"train": TrainOptions, "model": SocialLLMConfig}


def _groups_generate() -> dict[str, type]:
    from .socialllm import GenerationConfig

    return {"generate": GenerateOptions, "gen": GenerationConfig}


def _training_arguments() -> list[type]:
    from transformers import TrainingArguments

    return [TrainingArguments]


@dataclass
class Command:
    help: str
    run: Callable[[dict[str, Any]], dict[str, Any]]
    groups: Callable[[], dict[str, type]] = dict
    exclude: tuple[str, ...] = ()
    fallback_help: Callable[[], dict[str, list[type]]] = dict
    extra_help: dict[str, str] | None = None
    epilog: str = ""
    delegate: Callable[[list[str]], int] | None = None


def _collect(argv: list[str]) -> int:
    from .collect.__main__ import main as collect_main

    return collect_main(argv)


def _bench(argv: list[str]) -> int:
    try:
        from benchmarks.run import main as bench_main
    except ImportError:
        from .paths import ROOT

        if not (ROOT / "benchmarks" / "run.py").exists():
            print("socialalign bench: benchmarks/run.py is not in this checkout", file=sys.stderr)
            return 2
        sys.path.insert(0, str(ROOT))
        from benchmarks.run import main as bench_main
    return int(bench_main(argv) or 0)


GENERATION_HELP = {
    "gen.do_sample": "sample (official inference) instead of greedy decoding",
    "gen.temperature": "softmax temperature when sampling (official 0.7)",
    "gen.top_p": "nucleus sampling mass (official 0.9)",
    "gen.top_k": "sample among the k likeliest tokens (official 20)",
    "gen.repetition_penalty": "penalty on tokens already in the prompt or reply (official 1.2; 1.0 = none)",
    "gen.max_new_tokens": "longest reply in tokens (official 256)",
}
"""Help for ``socialllm.GenerationConfig`` fields its class does not document."""

MODEL_HELP = {
    "model.n_experts": "PAC-LoRA: analyzing experts (news-gated) and writing experts (user-gated) per layer",
    "model.r": "rank of each expert (PAC-LoRA) or of the LoRA update",
    "model.alpha": "scale numerator: the update is multiplied by alpha / r",
    "model.dropout": "dropout on the adapter input",
    "model.gate_hidden": "PAC-LoRA: hidden width of each gate MLP",
    "model.sft.gradient_checkpointing": "recompute activations during backward to save memory (7B runs: on)",
}
"""Field-by-field help where ``SocialLLMConfig`` documents knobs in bulk or ``TrainingArguments`` says too little."""

COMMANDS: dict[str, Command] = {
    "collect": Command("crawl Weibo (or the local mock) into JSONL; its own options: socialalign collect --help",
                       run=dict, delegate=_collect),
    "build": Command("world or real cases -> SocialAlign records (DatasetDict + JSONL per split)", cmd_build,
                     _groups_build, exclude=("source.size", "source.seed", "source.users")),
    "persona": Command("persona extraction (statistical | openai | hf) with a resumable cache", cmd_persona,
                       _groups_persona, exclude=("source.split",)),
    "train": Command("train PAC-LoRA / LoRA (SFT) and write the adapter; torchrun / accelerate launch ready",
                     cmd_train, _groups_train, exclude=("model.sft.output_dir",),
                     fallback_help=lambda: {"model": _training_arguments()}, extra_help=MODEL_HELP,
                     epilog="Multi-GPU: torchrun --nproc_per_node 4 -m socialalign_lib train ... or "
                            "accelerate launch --config_file configs/accelerate/ddp.yaml -m socialalign_lib train ..."),
    "generate": Command("bulk reply generation, resumable (JSONL written batch by batch)", cmd_generate,
                        _groups_generate, extra_help=GENERATION_HELP),
    "evaluate": Command("micro metrics of a replies file (sentiment, ROUGE, BLEU, distinct, persona)", cmd_evaluate,
                        lambda: {"evaluate": EvaluateOptions}),
    "bench": Command("benchmarks (benchmarks/run.py); its own options: socialalign bench --help", run=dict,
                     delegate=_bench),
}


def _top_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="socialalign", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        sub.add_parser(name, help=cmd.help)
    return ap


def command_parser(name: str) -> tuple[argparse.ArgumentParser, DataclassArgs]:
    """The full parser of one command (its config groups imported only now, so ``--help`` stays quick)."""
    cmd = COMMANDS[name]
    groups = {**cmd.groups(), "run": RunOptions}
    args = DataclassArgs(groups, fallback_help=cmd.fallback_help(), exclude=cmd.exclude, extra_help=cmd.extra_help)
    ap = argparse.ArgumentParser(prog=f"socialalign {name}", description=(cmd.run.__doc__ or cmd.help).strip(),
                                 epilog=cmd.epilog or None, formatter_class=argparse.RawDescriptionHelpFormatter)
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
        hint = "" if expected or configs["run"].verbose else f" ({type(err).__name__}; -v shows the traceback)"
        print(f"socialalign {name}: {text}{hint}", file=sys.stderr)
        return 2 if expected else 1
    _emit({"command": name, **summary})
    return 0


_USER_ERRORS: tuple[type[BaseException], ...] = (CommandError, ConfigFileError, FileNotFoundError, PermissionError)


def _is_user_error(err: BaseException) -> bool:
    """Errors about the inputs, which carry their own message (file, line, field): exit 2, like a usage error."""
    from .io import DataFormatError, OutputLockedError
    from .persona import PersonaError
    from .records import RecordError
    from .socialllm import SocialLLMError

    return isinstance(err, (DataFormatError, OutputLockedError, PersonaError, RecordError, SocialLLMError))


__all__ = ["COMMANDS", "BuildOptions", "CommandError", "EvaluateOptions", "GenerateOptions", "PersonaOptions",
           "RunOptions", "Source", "TrainOptions", "command_parser", "default_replies_path", "load_cases",
           "load_records", "main", "read_personas"]
