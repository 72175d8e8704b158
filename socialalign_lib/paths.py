"""Where things live. Notebooks run from ``notebooks/`` and the CLI from anywhere, so paths resolve from the
repository root (the folder with ``pyproject.toml``), overridable with ``SOCIALALIGN_HOME``."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    env = os.environ.get("SOCIALALIGN_HOME")
    if env:
        return Path(env).resolve()
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for d in (start, *start.parents):
            if (d / "pyproject.toml").exists() and (d / "socialalign_lib").is_dir():
                return d
    return Path.cwd()


ROOT = repo_root()
DATA_DIR = ROOT / "data"
GENERATED_DIR = DATA_DIR / "generated"  # git-ignored: rebuilt by `make course`
FIGURES_DIR = ROOT / "figures"
OUTPUTS_DIR = ROOT / "outputs"  # git-ignored: checkpoints, generations
EMBEDDED_MODEL = DATA_DIR / "socialalign-tiny"  # committed: the course's own base model
CHECKPOINTS_DIR = DATA_DIR / "checkpoints"  # committed: the course's trained adapters (`make checkpoints`)


def world_dir(size: str, seed: int = 0) -> Path:
    return GENERATED_DIR / f"world-{size}-seed{seed}"


def portable(path: str | os.PathLike) -> str:
    """A path inside the repository as its repository-relative POSIX form ("data/socialalign-tiny"); anything else
    (a hub id, a path elsewhere) unchanged. What goes into committed files and hashes, so that a run trained in one
    checkout is the same run in another (a fresh clone lives at another absolute path)."""
    text = str(path)
    p = Path(text)
    if p.is_absolute():
        for candidate, root in ((Path(os.path.normpath(p)), ROOT), (p.resolve(), ROOT.resolve())):
            try:
                return candidate.relative_to(root).as_posix()
            except ValueError:
                continue
    return text


def resolve_portable(path: str | os.PathLike) -> str:
    """Inverse of :func:`portable`: a relative path that exists under the repository root becomes absolute; a hub
    id or any other string is returned unchanged."""
    text = str(path)
    p = Path(text)
    if not p.is_absolute() and (ROOT / p).exists():
        return str(ROOT / p)
    return text
