# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench phantom notebook pages clean

$(BIN)/rtcheck: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The bundled plan checked, then a demo archive of four synthetic patients checked into
# rtcheck.db, which `rtcheck serve` shows.
demo: $(BIN)/rtcheck
	$(BIN)/rtcheck check phantom_data/thorax
	$(BIN)/rtcheck phantom demo_archive/demo-1 --patient-id DEMO-001 --seed demo-1 >/dev/null
	$(BIN)/rtcheck phantom demo_archive/demo-2 --patient-id DEMO-002 --seed demo-2 \
	    --no-primary --fractions 5 --prescription 35 --lesions 5 >/dev/null
	$(BIN)/rtcheck phantom demo_archive/demo-3 --patient-id DEMO-003 --seed demo-3 \
	    --no-primary --fractions 5 --prescription 35 --lesion-margin 9 >/dev/null
	$(BIN)/rtcheck phantom demo_archive/demo-4 --patient-id DEMO-004 --seed demo-4 \
	    --lesions 2 --lesion-plan 30/3 --lesion-plan 35/5 >/dev/null
	$(BIN)/rtcheck batch demo_archive --db rtcheck.db --workers 2
	@echo "Next: $(BIN)/rtcheck serve, then open http://127.0.0.1:8080 in a browser"

test: $(BIN)/rtcheck
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy src
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

bench: $(BIN)/rtcheck
	$(BIN)/python benchmarks/dvh_speed.py

# Jupyter is not needed by rtcheck or its tests: installed here, on first use.
notebook: $(BIN)/rtcheck
	$(BIN)/python -m pip install --quiet -e '.[notebook]'
	$(BIN)/jupyter notebook notebooks/walkthrough.ipynb

phantom: $(BIN)/rtcheck
	$(BIN)/rtcheck phantom phantom_data/thorax

# Each dashboard page of the demo archive as a PNG in pages/ (headless Chromium).
pages: $(BIN)/rtcheck
	$(BIN)/python scripts/render_pages.py --db rtcheck.db --out pages

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
