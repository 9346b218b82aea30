# Set-up and entry points for a new machine. `make main` and `make test` each install what they need.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup system main test test-all bench

# Debian tools of the speech pipeline (synthesis voices, audio effects); installed once, as root.
SYSTEM_TOOLS := espeak-ng flite sox text2wave
SYSTEM_PACKAGES := espeak-ng flite sox festival festvox-kdlpc16k festvox-us-slt-hts libsndfile1
system:
	@for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $(SYSTEM_PACKAGES); \
	  else echo "speech tools missing: run 'sudo apt-get install -y $(SYSTEM_PACKAGES)' (speech tests will skip)"; fi; \
	fi

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch first, from its CPU build: a bare `torch` requirement would pull CUDA wheels.
setup: $(BIN)/python system
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q '.[torch,flower,litert,speech,dev]'

main: setup
	$(BIN)/edgelearn fl run configs/fl_agnews_quick.toml --json runs/fl_agnews_quick.jsonl --jobs 2

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m ""

bench: setup
	$(BIN)/edgelearn bench --json runs/bench.json
