# Two commands for a fresh machine: `make demo` and `make test`.
# Both create .venv themselves from nothing but Python >= 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel

# Stamp files re-install whenever pyproject.toml changes.
$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	touch $@

# torch is pinned to the local CPU wheel before anything that depends on it: an unpinned
# resolve would pull the newest CUDA build (several GB).
TORCH_PIN := torch==2.13.0

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet "$(TORCH_PIN)"
	$(PIP) install --quiet -e ".[test,dev]"
	touch $@ $(VENV)/.installed-base

demo: $(VENV)/.installed-base
	$(BIN)/quantum demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench

bench: $(VENV)/.installed-test
	$(BIN)/python bench/indicators.py
	$(BIN)/python bench/simulator.py
	$(BIN)/python bench/risk.py
	$(BIN)/python bench/sweep.py
	$(BIN)/python bench/trading.py
	$(BIN)/python bench/rl_env.py
	$(BIN)/python bench/rl_train.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
