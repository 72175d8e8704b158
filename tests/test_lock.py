"""The lock: what `make env` installs is what the tests run with, inside pyproject's ranges, and the README and
environment.yml say the same versions."""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, version

import pytest
import tomllib
from packaging.requirements import Requirement

from socialalign_lib.paths import ROOT

_spec = importlib.util.spec_from_file_location("lock_tool", ROOT / "tools" / "lock.py")
lock_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lock_tool)


def _project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    deps = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    return [Requirement(d) for d in deps]


def test_lock_pins_every_project_requirement_inside_its_range():
    pins = lock_tool.read_lock()
    for req in _project_requirements():
        name = lock_tool._normal(req.name)
        assert name in pins, f"{req.name} is a dependency in pyproject.toml but not in requirements.lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"lock {req.name}=={pins[name]} not in {req}"
        )


def test_running_environment_is_the_locked_one():
    """`make test` runs in the venv that `make env` built from the lock; a drifted venv fails here, by name."""
    drifted = []
    for name, locked in lock_tool.read_lock().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            drifted.append(f"{name} missing (locked {locked})")
            continue
        if installed.split("+")[0] != locked:
            drifted.append(f"{name} {installed} (locked {locked})")
    assert not drifted, "installed set differs from requirements.lock (rerun `make env`): " + "; ".join(
        drifted
    )


def test_readme_and_environment_yml_show_the_locked_versions():
    stale = [p.name for p, text in lock_tool.synced().items() if p.read_text(encoding="utf-8") != text]
    assert not stale, f"{stale} out of step with requirements.lock: run `python tools/lock.py sync`"


def test_read_lock_names_a_bad_line(tmp_path):
    bad = tmp_path / "requirements.lock"
    bad.write_text("# header\nnumpy==2.4.6\ntorch>=2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"requirements\.lock:3: not a `name==version` pin"):
        lock_tool.read_lock(bad)
