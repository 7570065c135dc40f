# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench phantom notebook clean

$(BIN)/rtcheck: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/rtcheck
	$(BIN)/rtcheck check phantom_data/thorax

test: $(BIN)/rtcheck
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src
	$(BIN)/python -m pytest

bench: $(BIN)/rtcheck
	$(BIN)/python benchmarks/dvh_speed.py

# Jupyter is not needed by rtcheck or its tests: installed here, on first use.
notebook: $(BIN)/rtcheck
	$(BIN)/python -m pip install --quiet -e '.[notebook]'
	$(BIN)/jupyter notebook notebooks/walkthrough.ipynb

phantom: $(BIN)/rtcheck
	$(BIN)/rtcheck phantom phantom_data/thorax

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
