"""``socialalign evaluate``: micro metrics of a replies file per split, scored as the notebooks score them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .common import CommandError


@dataclass
class EvaluateOptions:
    replies: tuple[str, ...]  # replies JSONL file(s) from `socialalign generate` (shards are concatenated)
    labeller: str = "world"  # sentiment labeller of generated and real replies: world (n-gram, trained on the world's train split), lexicon, or a saved labeller .json  # noqa: E501
    size: str = "course"  # world for --labeller world and the persona histories
    seed: int = 0  # world seed
    method: str = "model"  # the method's name in the output table
    persona: bool = True  # also score persona consistency against the users' histories (world only)
    out: str | None = None  # metrics CSV (default: beside the first replies file, .metrics.csv)
    n_boot: int = 1000  # bootstrap replicates for the confidence intervals
    gold: Literal["auto", "dataset", "labeller"] = (
        "auto"  # the real reply's label: the dataset's own (world truth, human), the labeller's, or auto (dataset's when every row has one)  # noqa: E501
    )
    labels: tuple[str, ...] = ("negative", "neutral", "positive")  # sentiment label set


def _labeller(opt: EvaluateOptions, world: Any) -> Any:
    from socialalign_lib.sentiment import LexiconLabeller, load_labeller, train_world_labeller

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

    from socialalign_lib.crowd.distributions import REAL_COL, label_replies
    from socialalign_lib.data.read import read_jsonl
    from socialalign_lib.results import micro_metrics

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
        from socialalign_lib.world import generate_world

        world = generate_world(size=opt.size, seed=opt.seed)
    labelled = label_replies(frame, _labeller(opt, world))
    has_gold = frame["sentiment"].notna().all() and frame["sentiment"].astype(str).isin(opt.labels).all()
    if opt.gold == "dataset" and not has_gold:
        raise CommandError(
            f"--gold dataset: some replies have no label in {list(opt.labels)} (real data is often "
            "unlabelled: use --gold labeller)"
        )
    gold_col = "sentiment" if opt.gold == "dataset" or (opt.gold == "auto" and has_gold) else REAL_COL
    histories = None
    if opt.persona and world is not None:
        from socialalign_lib.experiments import histories as world_histories

        histories = world_histories(world)  # the notebooks' definition of a user's own texts
    parts = []
    for split, sub in labelled.groupby("split", sort=False):
        rows = pd.DataFrame(
            micro_metrics(sub, opt.labels, histories, gold_col=gold_col, n_boot=opt.n_boot, seed=opt.seed)
        )
        rows.insert(0, "method", opt.method)
        rows.insert(1, "split", split)
        rows["n"] = len(sub)
        parts.append(rows)
    table = pd.concat(parts, ignore_index=True)
    out = Path(opt.out) if opt.out else Path(opt.replies[0]).with_suffix(".metrics.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    return {
        "out": str(out),
        "replies": len(frame),
        "gold": "dataset" if gold_col == "sentiment" else "labeller",
        "metrics": {f"{r.split}/{r.metric}": round(float(r.value), 4) for r in table.itertuples()},
    }
