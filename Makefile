# Every target creates or refreshes the local virtual environment .venv first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-slow notebooks bench bench-slow clean

$(BIN)/tcnet: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dask,nwb]'
	touch $@

demo: $(BIN)/tcnet
	$(BIN)/tcnet demo

test: $(BIN)/tcnet
	$(BIN)/python -m pytest -q

# every tutorial notebook executed headless, files under out/ (FAST=1: the small version)
notebooks: $(BIN)/tcnet
	$(BIN)/python examples/run_notebooks.py $(if $(FAST),--fast,)

test-slow: $(BIN)/tcnet
	$(BIN)/python -m pytest -q -m slow

bench: $(BIN)/tcnet
	$(BIN)/python -m pytest tests/benchmarks -m "benchmark and not slow" --benchmark-enable --benchmark-columns=min,median,mean,rounds

# cost exponent over N = 100..2000 and the end-to-end N = 500 reproduction per backend
bench-slow: $(BIN)/tcnet
	$(BIN)/python -m pytest tests/benchmarks -m "benchmark and slow" --benchmark-enable --benchmark-columns=min,median,mean,rounds

clean:
	rm -rf $(VENV) build *.egg-info
