"""The locked package set: write `requirements.lock` from a resolved venv, and keep README / environment.yml in step.

`make env` installs exactly `requirements.lock` (every package pinned, transitive ones included), so a fresh clone
next year gets the set the tests passed with. `pyproject.toml` keeps the *ranges* the library supports; only
maintainers re-resolve them, with `make upgrade`:

    make upgrade        # scratch venv from pyproject's ranges -> requirements.lock -> README + environment.yml
                        # -> fresh .venv from the new lock -> make test

    python tools/lock.py write VENV      # the lock from VENV's installed packages (stdout)
    python tools/lock.py sync            # rewrite README's version table and environment.yml from the lock
    python tools/lock.py check           # exit 1 if README or environment.yml disagree with the lock

torch is locked by version without its local tag (`2.13.0`, not `2.13.0+cpu`): the Makefile installs the wheel
first (`TORCH_SPEC`, CPU or a CUDA index), and `torch==2.13.0` is satisfied by either build.
"""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
README = ROOT / "README.md"
ENVIRONMENT = ROOT / "environment.yml"

#: The packages the course asked for by name, shown in the README and named in environment.yml (the rest of the
#: lock comes along through `-r requirements.lock`).
COURSE_PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "bitsandbytes",
    "accelerate",
    "datasets",
    "tokenizers",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "matplotlib",
    "seaborn",
    "jupyterlab",
    "ipykernel",
    "ipywidgets",
    "papermill",
    "nbclient",
    "pytest",
)
README_BEGIN = "<!-- locked-versions:begin (tools/lock.py sync) -->"
README_END = "<!-- locked-versions:end -->"
ENV_BEGIN = "      # locked-versions:begin (tools/lock.py sync)"
ENV_END = "      # locked-versions:end"
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """``{normalised name: version}`` of the lock's pins; raises naming the line on anything but ``name==version``."""
    pins: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        if not match:
            raise ValueError(f"{path}:{number}: not a `name==version` pin: {line!r}")
        pins[_normal(match.group(1))] = match.group(2)
    return pins


def write_lock(venv: Path) -> str:
    """The lock text for the packages installed in ``venv`` (the project itself excluded)."""
    python = venv / "bin" / "python"
    freeze = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--exclude-editable"], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    version = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    pins = []
    for line in freeze:
        match = _PIN.match(line)
        if not match:
            raise ValueError(f"pip freeze gave a line that is not a pin (a VCS or path install?): {line!r}")
        name, ver = match.groups()
        if _normal(name) == "socialalign-course":
            continue
        pins.append(f"{name}=={ver.split('+')[0] if _normal(name) == 'torch' else ver}")
    header = [
        "# The tested package set: `make env` installs exactly this. Do not edit by hand: `make upgrade`",
        "# re-resolves pyproject.toml's ranges, rewrites this file, README's table and environment.yml, and runs",
        f"# the tests. Resolved with Python {version} on {platform.system()} {platform.machine()}.",
    ]
    return "\n".join(header + sorted(pins, key=str.lower)) + "\n"


def readme_block(pins: dict[str, str]) -> str:
    rows = " · ".join(f"{name} {pins[_normal(name)]}" for name in COURSE_PACKAGES if _normal(name) in pins)
    return f"{README_BEGIN}\n{rows}\n{README_END}"


def environment_block(pins: dict[str, str]) -> str:
    lines = [f"      - {name}=={pins[_normal(name)]}" for name in COURSE_PACKAGES if _normal(name) in pins]
    return "\n".join([ENV_BEGIN, *lines, ENV_END])


def _replace_between(text: str, begin: str, end: str, block: str, where: Path) -> str:
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"{where}: markers {begin!r} ... {end!r} not found")
    return text[:start] + block + text[stop + len(end) :]


def synced() -> dict[Path, str]:
    """README and environment.yml as they should read for the current lock."""
    pins = read_lock()
    readme = _replace_between(
        README.read_text(encoding="utf-8"), README_BEGIN, README_END, readme_block(pins), README
    )
    env = _replace_between(
        ENVIRONMENT.read_text(encoding="utf-8"), ENV_BEGIN, ENV_END, environment_block(pins), ENVIRONMENT
    )
    return {README: readme, ENVIRONMENT: env}


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "write":
        sys.stdout.write(write_lock(Path(argv[1])))
        return 0
    if argv == ["sync"]:
        for path, text in synced().items():
            path.write_text(text, encoding="utf-8")
        return 0
    if argv == ["check"]:
        stale = [
            str(p.relative_to(ROOT)) for p, text in synced().items() if p.read_text(encoding="utf-8") != text
        ]
        if stale:
            print(f"out of step with requirements.lock: {', '.join(stale)} (run `python tools/lock.py sync`)")
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
