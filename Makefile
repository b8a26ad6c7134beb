# Every target bootstraps .venv itself: a fresh machine needs nothing but python3.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check .

test: venv lint
	$(BIN)/python -m pytest -q

demo: venv
	$(BIN)/gains demo --out demo_out

bench: venv
	$(BIN)/python -m benchmarks.speed.bench_gamm
	$(BIN)/python -m benchmarks.speed.bench_train --steps 6
	$(BIN)/python -m benchmarks.speed.bench_score
	$(BIN)/python -m benchmarks.speed.bench_predict --huge
	$(BIN)/python -m benchmarks.speed.bench_loader
	$(BIN)/python -m benchmarks.bench_docs

clean:
	rm -rf demo_out .pytest_cache .ruff_cache build
