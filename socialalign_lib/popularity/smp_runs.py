"""Notebook 08's trained runs, committed: the SFT LoRA and the DPO / IDPOP LoRAs of every seed.

Why: the preference stage (DPO and IDPOP, three seeds each, with held-out evaluation every few steps) takes about
ten CPU minutes, half of the course's whole budget, and a course that cuts it to fit shows curves too short to
read. So ``make checkpoints`` trains them once and the repository ships the adapters
(``data/checkpoints/08-<size>/<run>/``: peft's ``adapter_model.safetensors`` + ``adapter_config.json`` and a
``run.json`` with the run key, the config, the trainer's log history and the training time). Notebook 08 loads a
run whose key matches what its parameters and data give, and trains otherwise (``retrain=True`` always trains).
Evaluation is never committed: every score, curve reading and mechanism number is computed in the notebook from
the loaded weights.

The key of a run is the sha256 of everything that made it: the base model's weights, the training data and the
config; a preference run's key also holds its SFT run's key and what made its pairs (the alignment prompts, the
sampling settings, the loss settings and the held-out split). ``tests/test_smp_runs.py`` checks that every
committed run's key equals the one the current code and world give, so a change to any of them fails CI until
``make checkpoints`` is rerun. Training runs seeded on the same software reproduce the adapters.

Usage: ``python -m socialalign_lib.popularity.smp_runs`` (part of ``make checkpoints``), ``--check``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import paths
from ..train.run_folder import portable_adapter
from . import idpop
from . import smp_llm as smp
from . import smp_llm_train as st

__all__ = [
    "BUDGETS",
    "HELD_OUT",
    "LOSS",
    "Budget",
    "CourseData",
    "CourseRuns",
    "RunStore",
    "build",
    "check",
    "course_data",
    "course_runs",
    "key_of",
    "model_fingerprint",
    "preference_config",
    "preference_key",
    "preference_or_load",
    "sampling_settings",
    "sft_config",
    "sft_key",
    "sft_or_load",
]


@dataclass(frozen=True)
class Budget:
    """Steps and sizes of notebook 08 per world size (``course``: the committed runs)."""

    sft_steps: int
    pref_steps: int
    batch: int
    n_boot: int
    standin_steps: int
    tpic_users: int
    probe_pairs: int
    seeds: int
    eval_every: int
    eval_pairs: int


BUDGETS: dict[str, Budget] = {
    "tiny": Budget(
        sft_steps=6,
        pref_steps=2,
        batch=8,
        n_boot=100,
        standin_steps=20,
        tpic_users=20,
        probe_pairs=40,
        seeds=2,
        eval_every=1,
        eval_pairs=16,
    ),
    "course": Budget(
        sft_steps=64,
        pref_steps=24,
        batch=16,
        n_boot=1000,
        standin_steps=120,
        tpic_users=100,
        probe_pairs=200,
        seeds=3,
        eval_every=8,
        eval_pairs=64,
    ),
    "large": Budget(
        sft_steps=600,
        pref_steps=150,
        batch=16,
        n_boot=1000,
        standin_steps=300,
        tpic_users=300,
        probe_pairs=1000,
        seeds=3,
        eval_every=15,
        eval_pairs=400,
    ),
}

#: The loss settings of notebook 08 (β, λ, α, δ, μ_max): the same for DPO (which reads β only) and IDPOP.
LOSS = idpop.IDPOPSettings(beta=0.5, lam=0.5, alpha=1.0, delta=0.1, mu_max=5.0)
HELD_OUT = 0.25  # share of the alignment users whose pairs are held out for the preference curves


def sft_config(budget: Budget, seed: int, method: str = "lora") -> st.SFTRunConfig:
    """The SFT run of notebook 08: LoRA at 3e-3 (``method="full"``: full fine-tuning at 2e-3)."""
    lora = st.LoraSettings() if method == "lora" else None
    return st.SFTRunConfig(
        lora=lora,
        max_steps=budget.sft_steps,
        batch_size=budget.batch,
        seed=seed,
        learning_rate=3e-3 if lora else 2e-3,
        logging_steps=max(1, budget.sft_steps // 8),
    )


def preference_config(budget: Budget, seed: int, method: str = "lora") -> idpop.PreferenceRunConfig:
    """The DPO / IDPOP run of notebook 08 (both methods share it: the comparison changes only the loss)."""
    return idpop.PreferenceRunConfig(
        loss=LOSS,
        lora=st.LoraSettings() if method == "lora" else None,
        max_steps=budget.pref_steps,
        batch_size=max(2, budget.batch // 2),
        learning_rate=5e-3 if method == "lora" else 1e-3,
        seed=seed,
        logging_steps=budget.eval_every,
        eval_steps=budget.eval_every,
    )


def sampling_settings(seed: int) -> st.GenerationSettings:
    """Two sampled answers per alignment prompt: the raw material of the preference pairs."""
    return st.GenerationSettings(
        do_sample=True, temperature=1.0, num_return_sequences=2, batch_size=64, seed=seed, progress=False
    )


@dataclass
class CourseData:
    """The examples of notebook 08 built from one set of posts (see :func:`course_data`)."""

    main: Any
    align: Any
    train_ex: list[smp.Example]
    test_ex: list[smp.Example]
    align_ex: list[smp.Example]
    prompt_cfg: smp.PromptConfig


def course_data(posts: Any, seed: int = 0, language: str = "zh") -> CourseData:
    """Cold-start users (≥ 5 posts, the last 5 kept) split into SFT users and alignment users; their 1-3 shot
    examples. Post ids are written 帖子1, 帖子2, … instead of 7-digit pids: fewer digits for a tiny model to mix up
    with scores."""
    cold = smp.select_users(posts, smp.SampleConfig(min_posts=5, keep_last=5, seed=seed))
    main, align = smp.split_users(cold, align_fraction=0.5, seed=seed)
    prompt_cfg = smp.PromptConfig(language=language, post_ids="index")
    return CourseData(
        main,
        align,
        smp.build_examples(main, (1, 2, 3), "train", prompt_cfg),
        smp.build_examples(main, (1, 2, 3), "test", prompt_cfg),
        smp.build_examples(align, (1, 2, 3), "test", prompt_cfg),
        prompt_cfg,
    )


# ------------------------------------------------------------------------------------------------------------
# Keys
# ------------------------------------------------------------------------------------------------------------


def key_of(*parts: Any) -> str:
    """sha256 of the parts as sorted-keys JSON (dataclasses as dicts)."""

    def plain(x: Any) -> Any:
        return dataclasses.asdict(x) if dataclasses.is_dataclass(x) else x

    blob = json.dumps([plain(p) for p in parts], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def model_fingerprint(model: Any) -> str:
    """sha256 of the model's weights (every tensor's name, shape and bytes): the base a run was trained on.
    Cheap for the embedded model (~1 M parameters); a 7B base would take a while, which is why the notebook asks
    for it only when a committed run could match (``base_model=None``)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(dtype=torch.uint8).numpy())
    return digest.hexdigest()


def _examples_blob(examples: Sequence[smp.Example]) -> list[Any]:
    return [[e.uid, e.shots, e.form, e.prompt, e.answer, e.language] for e in examples]


def _train_cfg(cfg: Any) -> dict[str, Any]:
    """A run config without the fields that change nothing in the weights (where logs go, progress bars)."""
    d = dataclasses.asdict(cfg)
    for k in ("output_dir", "progress", "use_cpu", "logging_steps"):
        d.pop(k, None)
    return d


def sft_key(base_fingerprint: str, train_ex: Sequence[smp.Example], cfg: st.SFTRunConfig) -> str:
    """The key of an SFT run: base weights, training examples and config."""
    return key_of("sft", base_fingerprint, _examples_blob(train_ex), _train_cfg(cfg))


def preference_key(
    sft: str,
    method: str,
    align_ex: Sequence[smp.Example],
    sampling: st.GenerationSettings,
    cfg: idpop.PreferenceRunConfig,
    n_eval_pairs: int,
    held_out: float = HELD_OUT,
    split_seed: int = 0,
) -> str:
    """The key of a DPO / IDPOP run: its SFT run, what made the pairs (alignment prompts, sampling, loss settings,
    the held-out split), how many held-out pairs the curve reads, the method and the config (``logging_steps``
    stays in: it sets where the held-out curve is measured)."""
    cfg_d = dataclasses.asdict(cfg)
    for k in ("output_dir", "use_cpu"):
        cfg_d.pop(k, None)
    return key_of(
        "preference",
        sft,
        method,
        _examples_blob(align_ex),
        sampling,
        cfg_d,
        n_eval_pairs,
        held_out,
        split_seed,
    )


# ------------------------------------------------------------------------------------------------------------
# Store
# ------------------------------------------------------------------------------------------------------------


@dataclass
class RunStore:
    """Folder of committed runs (``data/checkpoints/08-<size>``); ``retrain=True`` never loads from it and
    ``save=True`` writes what was trained into it (``make checkpoints``)."""

    root: Path
    retrain: bool = False
    save: bool = False

    @classmethod
    def for_size(cls, size: str, **kw: Any) -> RunStore:
        return cls(paths.CHECKPOINTS_DIR / f"08-{size}", **kw)

    def _info(self, name: str) -> dict[str, Any] | None:
        """The run's ``run.json`` (None when the run was never committed). A damaged folder is an error that names
        the file and the field, never a silent retrain or a crash deep inside peft."""
        file = self.root / name / "run.json"
        if not file.exists():
            return None
        try:
            info = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{file}: not a readable run file ({err}); rerun `make checkpoints`") from err
        for field_name in ("key", "history", "seconds"):
            if field_name not in info:
                raise ValueError(f"{file}: field {field_name!r} is missing; rerun `make checkpoints`")
        for adapter_file in ("adapter_config.json", "adapter_model.safetensors"):
            if not (file.parent / adapter_file).exists():
                raise FileNotFoundError(
                    f"{file.parent / adapter_file}: missing beside run.json; rerun `make checkpoints`"
                )
        return info

    def committed_key(self, name: str) -> str | None:
        info = self._info(name)
        return None if info is None else info["key"]

    def load(self, name: str, key: str, model: Any) -> st.TrainResult | None:
        """The committed run ``name`` merged into a copy of ``model`` when its key is ``key``; else None."""
        info = None if self.retrain else self._info(name)
        if info is None or info["key"] != key:
            return None
        from peft import PeftModel

        merged = PeftModel.from_pretrained(st.fresh_copy(model), str(self.root / name)).merge_and_unload()
        return st.TrainResult(st.unpatch_forward(merged).eval(), info["history"], info["seconds"])

    def staging(self, name: str) -> Path | None:
        """Where a run being trained saves its adapter (None when the store does not save)."""
        if not self.save:
            return None
        tmp = self.root / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        return tmp

    def commit(self, name: str, key: str, run: st.TrainResult, config: Any) -> None:
        """Move the staged adapter into place with its ``run.json`` (key, config, history, training time)."""
        if not self.save:
            return
        tmp, out = self.root / f".{name}.tmp", self.root / name
        portable_adapter(tmp)  # repository-relative base path, sorted module lists, no model-card template
        (tmp / "run.json").write_text(
            json.dumps(
                {
                    "key": key,
                    "config": dataclasses.asdict(config),
                    "seconds": round(run.seconds, 1),
                    "history": run.history,
                },
                indent=1,
                ensure_ascii=False,
                default=str,
            )
            + "\n",
            encoding="utf-8",
        )
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)


def _load_or_train(
    store: RunStore, name: str, key: str, model: Any, cfg: Any, train: Callable[[Path | None], st.TrainResult]
) -> tuple[st.TrainResult, bool]:
    """(run, loaded?): the committed run ``name`` merged into ``model`` when its key is ``key``, else
    ``train(adapter_dir)`` (kept under ``name`` when the store saves). Full fine-tuning (``cfg.lora is None``)
    leaves no adapter, so it always trains."""
    run = store.load(name, key, model) if cfg.lora is not None else None
    if run is not None:
        return run, True
    run = train(store.staging(name))
    store.commit(name, key, run, cfg)
    return run, False


def sft_or_load(
    store: RunStore, base: Any, tok: Any, train_ex: Sequence[smp.Example], cfg: st.SFTRunConfig, key: str
) -> tuple[st.TrainResult, bool]:
    """(SFT run, loaded?): see :func:`_load_or_train`."""
    return _load_or_train(
        store,
        f"sft-seed{cfg.seed}",
        key,
        base,
        cfg,
        lambda out: st.train_sft(base, tok, train_ex, cfg, adapter_dir=out),
    )


def preference_or_load(
    store: RunStore,
    sft_model: Any,
    tok: Any,
    train_pairs: Sequence[idpop.PreferencePair],
    method: str,
    cfg: idpop.PreferenceRunConfig,
    eval_pairs: Sequence[idpop.PreferencePair],
    key: str,
) -> tuple[st.TrainResult, bool]:
    """(DPO / IDPOP run, loaded?): see :func:`_load_or_train`."""
    return _load_or_train(
        store,
        f"{method}-seed{cfg.seed}",
        key,
        sft_model,
        cfg,
        lambda out: idpop.train_preference(
            sft_model, tok, train_pairs, method, cfg, eval_pairs=eval_pairs, adapter_dir=out
        ),
    )


# ------------------------------------------------------------------------------------------------------------
# make checkpoints / the staleness test
# ------------------------------------------------------------------------------------------------------------


@dataclass
class CourseRuns:
    """Everything notebook 08 trains at one size, with the keys its committed runs must carry."""

    size: str
    seed: int
    budget: Budget
    data: CourseData
    sft_cfg: st.SFTRunConfig
    sft_key: str
    pref_cfgs: dict[int, idpop.PreferenceRunConfig]

    def pref_key(self, method: str, s: int) -> str:
        return preference_key(
            self.sft_key,
            method,
            self.data.align_ex,
            sampling_settings(self.seed),
            self.pref_cfgs[s],
            self.budget.eval_pairs,
            split_seed=self.seed,
        )


def course_runs(size: str = "course", seed: int = 0, base: Any | None = None) -> CourseRuns:
    """The runs of notebook 08 on the embedded world and model with its default parameters."""
    from ..models import load_base_model
    from ..world import generate_world

    if base is None:
        base, _ = load_base_model(paths.EMBEDDED_MODEL)
    budget = BUDGETS[size]
    data = course_data(smp.posts_frame(generate_world(size=size, seed=seed).smp_posts), seed)
    cfg = sft_config(budget, seed)
    return CourseRuns(
        size,
        seed,
        budget,
        data,
        cfg,
        sft_key(model_fingerprint(base), data.train_ex, cfg),
        {seed + s: preference_config(budget, seed + s) for s in range(budget.seeds)},
    )


def check(size: str = "course") -> list[str]:
    """Problems that make the committed runs of ``size`` stale or incomplete ([] = current)."""
    runs = course_runs(size)
    store = RunStore.for_size(size)
    want = {f"sft-seed{runs.seed}": runs.sft_key}
    want.update({f"{m}-seed{s}": runs.pref_key(m, s) for s in runs.pref_cfgs for m in ("dpo", "idpop")})
    problems = []
    for name, key in want.items():
        have = store.committed_key(name)
        if have != key:
            problems.append(
                f"{store.root / name}: {'missing' if have is None else 'stale (key differs)'}; "
                "rerun `make checkpoints`"
            )
    return problems


def build(size: str = "course", seed: int = 0) -> None:
    """Train and keep every run of notebook 08 at ``size`` (the notebook's own steps, in its order)."""
    from ..models import load_base_model

    base, tok = load_base_model(paths.EMBEDDED_MODEL)
    runs = course_runs(size, seed, base)
    store = RunStore.for_size(size, retrain=True, save=True)
    t0 = time.perf_counter()
    sft, _ = sft_or_load(store, base, tok, runs.data.train_ex, runs.sft_cfg, runs.sft_key)
    samples = st.generate_answers(sft.model, tok, runs.data.align_ex, sampling_settings(seed), "sample pairs")
    pairs, _ = idpop.build_preference_pairs(runs.data.align_ex, samples, LOSS)
    train_pairs, held_pairs = idpop.split_pairs(pairs, held_out=HELD_OUT, seed=seed)
    for s, cfg in runs.pref_cfgs.items():
        for method in ("dpo", "idpop"):
            preference_or_load(
                store,
                sft.model,
                tok,
                train_pairs,
                method,
                cfg,
                held_pairs[: runs.budget.eval_pairs],
                runs.pref_key(method, s),
            )
            print(f"{method} seed {s}: done at {time.perf_counter() - t0:.0f} s", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="course", choices=sorted(BUDGETS))
    ap.add_argument("--check", action="store_true", help="only list committed runs that are missing or stale")
    args = ap.parse_args(argv)
    if not args.check:
        st.set_threads(2)
        build(args.size)
    problems = check(args.size)
    print("\n".join(problems) or f"notebook 08's committed runs ({args.size}) are current")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
