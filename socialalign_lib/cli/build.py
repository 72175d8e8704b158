"""``socialalign build``: the embedded world or real cases → SocialAlign records (a ``DatasetDict`` folder, one
JSONL per split and ``build.json``), replaced as a whole so a kill never leaves a mix of two builds."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .args import to_config_dict
from .common import CommandError, _outputs_dir
from .inputs import BUILD_FILE, DATASET_DIR, JSONL_DIR, Source, load_cases, read_personas


@dataclass
class BuildOptions:
    out_dir: str | None = (
        None  # output folder (default outputs/data/<size>-seed<seed>, or outputs/data/<cases file stem>)
    )
    personas: str | None = (
        None  # personas.jsonl (or its folder) from `socialalign persona`; default: statistical, as the notebooks
    )
    history_filter: bool = (
        False  # drop history posts by the official rules (clean.HistoryFilter) before retrieval
    )


def cmd_build(c: dict[str, Any]) -> dict[str, Any]:
    """Records for every split → ``<out>/dataset`` (``DatasetDict.save_to_disk``), ``<out>/jsonl/<split>.jsonl``
    and ``<out>/build.json`` (the settings used and the split sizes; ``train`` reads the world size and seed from it
    to name its default run folder as the notebooks do)."""
    from socialalign_lib.build.pipeline import build_from_cases, course_data
    from socialalign_lib.build.records.dataset import export_jsonl

    data, src, opt = c["data"], c["source"], c["build"]
    hfilter = None
    if opt.history_filter:
        from socialalign_lib.data.history import HistoryFilter

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
            from socialalign_lib.world import generate_world

            cases = generate_world(size=data.size, seed=data.seed).cases()
            name = f"{data.size}-seed{data.seed}"
        personas = read_personas(opt.personas) if opt.personas else {}
        dataset = build_from_cases(cases, data, personas, hfilter, progress=c["run"].progress)
    counts = {split: len(ds) for split, ds in dataset.items()}
    if not sum(counts.values()):
        raise CommandError(
            f"{src.cases or name}: no records were built"
            + (" (--history-filter removed every case's history?)" if hfilter is not None else "")
        )
    out = Path(opt.out_dir) if opt.out_dir else _outputs_dir() / "data" / name
    _check_build_target(out)
    staging = out.parent / f".{out.name}.building-{os.getpid()}"
    import shutil

    from socialalign_lib.data.write import replace_dir, write_json

    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        # an empty split gets one (empty) shard: with the default zero shards it is saved without a data file,
        # which load_from_disk cannot read back (IndexError)
        dataset.save_to_disk(
            str(staging / DATASET_DIR), num_shards={k: 1 for k, n in counts.items() if n == 0}
        )
        export_jsonl(dataset, staging / JSONL_DIR)
        write_json(
            staging / BUILD_FILE,
            {
                "source": "cases" if src.cases else "world",
                "size": data.size,
                "seed": data.seed,
                "data": to_config_dict(data),
                "source_options": to_config_dict(src),
                "build": to_config_dict(opt),
                "counts": counts,
            },
        )
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
        raise CommandError(
            f"--out-dir {out}: holds {foreign[:5]}, which a build did not write; the build replaces "
            "the whole folder, so choose an empty or new one"
        )


def _groups_build() -> dict[str, type]:
    from socialalign_lib.build.pipeline import CourseDataConfig

    return {"data": CourseDataConfig, "source": Source, "build": BuildOptions}
