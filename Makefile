# Set-up and entry points for a new machine. `make main` and `make test` each install what they need.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup main test test-all bench

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch first, from its CPU build: a bare `torch` requirement would pull CUDA wheels.
setup: $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q '.[torch,litert,dev]'

main: setup
	$(BIN)/edgelearn finetune --json runs/finetune.json --plot runs/finetune.png

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m ""

bench: setup
	$(BIN)/edgelearn bench --json runs/bench.json
