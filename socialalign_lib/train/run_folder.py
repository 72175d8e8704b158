"""A SocialLLM run folder: its name, its hash, its state file and its adapter files.

What :func:`~socialalign_lib.train.socialllm.train_socialllm` writes and what loading checks, apart from the
training itself, so the CLI, the committed-checkpoint tools and the notebooks agree on one layout:

    <run>/socialllm.json      config, run hash, loss history, versions, adapter checksums (STATE_FILE)
    <run>/adapter/            the peft adapter (ADAPTER_DIR)
    <run>/checkpoints/        Trainer checkpoints while training (CHECKPOINT_DIR), deleted once finished
    <run>/replies/            replies files (REPLIES_DIR; file names: ``socialalign_lib.generate.paths``)

The run hash (``socialllm.run_hash``) covers the config, the base model and the training records; a committed run under
``data/checkpoints`` is current when its state file holds that value. The hash's inputs and their serialisation
are frozen: changing them renames every run and retires the committed adapters.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from socialalign_lib import paths
from socialalign_lib.data.read import read_json
from socialalign_lib.data.write import write_json

if TYPE_CHECKING:
    from .config import SocialLLMConfig

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_DIR",
    "ADAPTER_WEIGHTS",
    "CHECKPOINT_DIR",
    "FORMAT",
    "REPLIES_DIR",
    "STATE_FILE",
    "SocialLLMError",
    "adapter_checksums",
    "base_fingerprint",
    "check_loaded_adapter",
    "dataset_fingerprint",
    "default_output_dir",
    "is_committed",
    "portable_adapter",
    "read_finished_state",
    "read_run_state",
    "replies_dir",
    "run_hash_of_records",
    "run_name",
    "sha256_json",
    "verify_adapter",
    "write_run_state",
]

STATE_FILE = "socialllm.json"
ADAPTER_DIR = "adapter"
CHECKPOINT_DIR = "checkpoints"
FORMAT = "socialalign-socialllm/1"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
REPLIES_DIR = "replies"
"""Sub-folder of a run folder that holds its replies files (JSON Lines, one reply per line)."""


class SocialLLMError(RuntimeError):
    """A SocialLLM run folder is missing, unfinished or inconsistent (the message names the folder and file)."""


def sha256_json(obj: Any) -> str:
    """sha256 of ``obj`` as sorted-key JSON: the one hash behind config hashes, run hashes and reply-file names."""
    return hashlib.sha256(
        json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()
    ).hexdigest()


def dataset_fingerprint(records: Iterable[Mapping[str, Any]]) -> str:
    """sha256 of the records' ids, prompts, spans and replies: the same world and split give the same value."""
    digest = hashlib.sha256()
    for rec in records:
        row = [
            rec.get("case_id"),
            rec.get("variant"),
            rec["instruction"],
            rec.get("output"),
            list(rec["user_span"]),
            list(rec["news_span"]),
        ]
        digest.update(json.dumps(row, ensure_ascii=False).encode())
    return digest.hexdigest()


def base_fingerprint(name_or_path: str) -> str:
    """The base model's identity: its name, and for a local folder the hash of its config and weights index."""
    local = Path(name_or_path).expanduser()
    parts = [paths.portable(name_or_path)]
    if local.is_dir():
        for name in ("config.json", "build_info.json", "model.safetensors.index.json"):
            file = local / name
            if file.exists():
                parts.append(hashlib.sha256(file.read_bytes()).hexdigest())
    return sha256_json(parts)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(text).name or text)[:40]


def run_name(cfg: SocialLLMConfig) -> str:
    """``<base>-<method>-<variant>-<hash8>``: a run folder's name, the same under ``outputs/`` and ``data/checkpoints``."""  # noqa: E501
    return f"{_slug(cfg.base_model)}-{cfg.method}-{cfg.variant}-{cfg.config_hash()[:8]}"


def default_output_dir(cfg: SocialLLMConfig, size: str, seed: int, committed: bool = True) -> Path:
    """``outputs/socialllm/<size>-seed<seed>/<base>-<method>-<variant>-<hash8>`` (git-ignored). The config hash in
    the name keeps runs of different configs apart; the world (size, seed) names the training data.

    ``committed`` (default): when the repository ships this run (``data/checkpoints/<size>-seed<seed>/<name>``,
    written by ``make checkpoints``), that folder instead, so notebooks load the converged adapters rather than
    train them; ``train_socialllm`` refuses to overwrite a committed run that no longer matches its data
    (``committed=False``, the notebooks' ``retrain=True``, trains a fresh copy under ``outputs/``)."""
    name = run_name(cfg)
    shipped = paths.CHECKPOINTS_DIR / f"{size}-seed{seed}" / name
    if committed and (shipped / STATE_FILE).exists():
        return shipped
    return paths.OUTPUTS_DIR / "socialllm" / f"{size}-seed{seed}" / name


def run_hash_of_records(cfg: SocialLLMConfig, records: list[dict[str, Any]]) -> str:
    """What identifies a finished run (``socialllm.run_hash``): the config hash, the base model's fingerprint and
    the fingerprint of the training ``records`` (already reduced to ``cfg.variant`` and listed)."""
    return sha256_json(
        [
            cfg.config_hash(),
            base_fingerprint(cfg.base_model),
            dataset_fingerprint(records) if cfg.method != "base" else "",
        ]
    )


def replies_dir(run_dir: str | os.PathLike) -> Path:
    """``<run>/replies``: the folder of every replies file of the run in ``run_dir`` (``generate.paths``)."""
    return Path(run_dir) / REPLIES_DIR


def is_committed(out: Path) -> bool:
    """True when ``out`` lies under ``data/checkpoints`` (a run the repository ships)."""
    try:
        out.resolve().relative_to(paths.CHECKPOINTS_DIR.resolve())
    except ValueError:
        return False
    return True


def read_run_state(output_dir: Path) -> dict[str, Any] | None:
    """The run's ``STATE_FILE`` (config, hashes, versions) or None when the folder has none (yet)."""
    file = output_dir / STATE_FILE
    if not file.exists():
        return None
    return read_json(file)


def write_run_state(output_dir: Path, state: dict[str, Any]) -> None:
    """Write the run's ``STATE_FILE`` atomically."""
    write_json(output_dir / STATE_FILE, state)


def read_finished_state(output_dir: str | Path) -> dict[str, Any]:
    """The run file of a finished ``train_socialllm`` run; :class:`SocialLLMError` otherwise."""
    out = Path(output_dir)
    state = read_run_state(out) if out.is_dir() else None
    if state is None:
        raise SocialLLMError(
            f"{out / STATE_FILE}: not found; train with train_socialllm(cfg, data, {str(out)!r})"
        )
    if not state.get("finished"):
        raise SocialLLMError(
            f"{out / STATE_FILE}: the run did not finish; call train_socialllm again to resume it"
        )
    return state


def portable_adapter(adapter_dir: str | Path) -> None:
    """Make a saved adapter folder independent of the checkout: peft writes the base model's absolute path into
    ``adapter_config.json`` and a boilerplate model card ``README.md`` that repeats it; the path becomes
    repository-relative (``paths.portable``) and the card is dropped (``socialllm.json`` documents the run).
    peft keeps ``target_modules`` as a set and writes it in the process's string-hash order, so two identical runs
    wrote different bytes; the lists are sorted here (peft reads them back into a set), and ``make checkpoints``
    rebuilds every file bit for bit."""
    folder = Path(adapter_dir)
    config = folder / ADAPTER_CONFIG
    if config.exists():
        data = read_json(config)
        if data.get("base_model_name_or_path"):
            data["base_model_name_or_path"] = paths.portable(data["base_model_name_or_path"])
        for key in ("target_modules", "modules_to_save", "exclude_modules"):
            if isinstance(data.get(key), list):
                data[key] = sorted(data[key])
        write_json(config, data)
    (folder / "README.md").unlink(missing_ok=True)


def adapter_checksums(adapter_dir: str | Path) -> dict[str, str]:
    """``{file name: sha256}`` of an adapter folder's files, recorded in the run file to verify them on load."""
    out = {}
    for f in sorted(Path(adapter_dir).iterdir()):
        if f.is_file():
            digest = hashlib.sha256()
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            out[f.name] = digest.hexdigest()
    return out


def verify_adapter(output_dir: str | Path, state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Check a finished run's adapter files before any of them is used; return ``{tensor name: shape}``.

    Why: a missing weights file makes peft look the path up on the Hub as a repo id, and corrupted bytes end in
    a JSON error of the safetensors header; both say nothing about the adapter. Checked here: both files
    exist, their sha256 matches the one recorded in the run file (runs trained before the checksum existed
    skip this step), and the weights header reads.
    """
    adapter = Path(output_dir) / ADAPTER_DIR
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (adapter / name).is_file():
            raise SocialLLMError(
                f"{adapter / name}: missing although {STATE_FILE} says the run finished; "
                "train again (or restore the file)"
            )
    recorded = state.get("adapter_sha256") or {}
    actual = adapter_checksums(adapter) if recorded else {}
    for name, digest in recorded.items():
        if actual.get(name) != digest:
            problem = (
                "missing"
                if name not in actual
                else f"checksum differs from the one recorded in {STATE_FILE} (a corrupted or replaced file)"
            )
            raise SocialLLMError(f"{adapter / name}: {problem}; train again (or restore the file)")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(adapter / ADAPTER_WEIGHTS), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 - safe_open has no iter
    except (SafetensorError, OSError, ValueError) as err:
        raise SocialLLMError(
            f"{adapter / ADAPTER_WEIGHTS}: not a readable safetensors file ({err})"
        ) from None


def check_loaded_adapter(model: Any, shapes: Mapping[str, tuple[int, ...]], adapter: Path) -> None:
    """The file's tensors must be exactly the ones the adapter config makes (peft only warns on missing keys and
    would run with those weights at their random initialisation)."""
    from peft import get_peft_model_state_dict

    expected = {k: tuple(v.shape) for k, v in get_peft_model_state_dict(model).items()}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = sorted(k for k in set(expected) & set(shapes) if expected[k] != shapes[k])
    if missing or unexpected or wrong:
        parts = [
            f"{len(v)} {what} (e.g. {v[0]})"
            for what, v in (("missing", missing), ("unexpected", unexpected), ("of another shape", wrong))
            if v
        ]
        raise SocialLLMError(
            f"{adapter / ADAPTER_WEIGHTS}: does not match its adapter config: "
            + ", ".join(parts)
            + " tensor(s)"
        )
