# The README's commands. `make course` and `make test` each set up .venv first (once; again when the lock changes).
# .venv gets exactly requirements.lock (the tested set); `make upgrade` re-resolves pyproject's ranges (maintainers).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# CPU wheel by default (it lies on this machine's disk); for CUDA see README "GPU".
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY ?= 1
export TOKENIZERS_PARALLELISM ?= false
# OpenMP threads sleep instead of spinning while they wait: a busy 2-core machine stays usable (socialalign_lib/runtime.py)
export OMP_WAIT_POLICY ?= PASSIVE
LOCK   := requirements.lock
# The browser test's extras, outside the lock (a test tool, not a course dependency): Debian's chromium + CJK
# fonts from apt, playwright from pip (driving that chromium: playwright never downloads a browser here).
PLAYWRIGHT_SPEC ?= playwright==1.63.0
BROWSER_APT     := chromium fonts-noto-cjk
SUDO            := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: env course test test-fast test-browser lint bench model checkpoints clean upgrade

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; v == (3, 11) or print(f"warning: the lock was tested with Python 3.11, this is {v[0]}.{v[1]}")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

env: $(STAMP)

course: env
	$(BIN)/python -m socialalign_lib.course

# -rs: every skipped test says why (the browser test without chromium/playwright, GPU tests without CUDA)
test: env
	$(BIN)/python -m pytest -q -rs

# The quick loop while editing: everything but the tests marked slow (training, notebook runs); `make test` before a commit
test-fast: env
	$(BIN)/python -m pytest -q -rs -m "not slow"

# The explorers in JupyterLab + headless Chromium (tests/test_browser.py); screenshots to figures/. A few minutes.
test-browser: env
	@dpkg -s $(BROWSER_APT) >/dev/null 2>&1 || { $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(BROWSER_APT); }
	$(BIN)/pip install --quiet $(PLAYWRIGHT_SPEC) -c $(LOCK)
	SOCIALALIGN_BROWSER_SHOTS=figures $(BIN)/python -m pytest -q -rs tests/test_browser.py

lint: env
	$(BIN)/ruff check socialalign_lib tests tools benchmarks notebooks/solutions
	$(BIN)/ruff format --check socialalign_lib tests tools benchmarks notebooks/solutions

bench: env
	$(BIN)/python -m benchmarks.run

model: env
	$(BIN)/python -m socialalign_lib.models --rebuild

# The committed adapters notebooks 03-06 load (data/checkpoints) and figures/03_learning_curve.csv; ~40 min on 2 cores.
# Then notebook 08's SFT / DPO / IDPOP runs (data/checkpoints/08-course), ~10 min.
# Rerun after changing the world, the records, the base model or a course training config (tests/test_checkpoints.py
# and tests/test_smp_runs.py fail until then).
checkpoints: env
	$(BIN)/python -m socialalign_lib.checkpoints
	$(BIN)/python -m socialalign_lib.popularity.smp_runs

# Maintainers: re-resolve pyproject.toml's ranges in a scratch venv, rewrite the lock (and README / environment.yml),
# rebuild .venv from it and run the tests. Commit the lock only if they pass.
upgrade:
	rm -rf .venv-upgrade
	$(PYTHON) -m venv .venv-upgrade
	.venv-upgrade/bin/pip install --quiet --upgrade pip
	.venv-upgrade/bin/pip install --quiet $(TORCH_SPEC)
	.venv-upgrade/bin/pip install --quiet -e ".[dev]"
	.venv-upgrade/bin/python tools/lock.py write .venv-upgrade > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .venv-upgrade $(VENV)
	$(PYTHON) tools/lock.py sync
	$(MAKE) test

clean:
	rm -rf data/generated outputs .pytest_cache
