# The README's commands. `make course` and `make test` each set up .venv first (once; again when pyproject changes).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# CPU wheel by default (it lies on this machine's disk); for CUDA see README "GPU".
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: env course test lint bench model clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

env: $(STAMP)

course: env
	$(BIN)/python -m socialalign_lib.course

test: env
	$(BIN)/python -m pytest -q

lint: env
	$(BIN)/ruff check socialalign_lib tests tools benchmarks

bench: env
	$(BIN)/python -m benchmarks.run

model: env
	$(BIN)/python -m socialalign_lib.models --rebuild

clean:
	rm -rf notebooks/.executed data/generated outputs .pytest_cache
