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
	$(BIN)/python benchmarks/bench_gamm.py
	$(BIN)/python benchmarks/bench_train.py --steps 6
	$(BIN)/python benchmarks/bench_score.py
	$(BIN)/python benchmarks/bench_predict.py --huge
	$(BIN)/python benchmarks/bench_loader.py
	$(BIN)/python benchmarks/bench_docs.py

clean:
	rm -rf demo_out .pytest_cache .ruff_cache build
