# Everything lives in a project-local virtual environment (.venv), kernel caches included.
# torch is pinned to the CPU wheel this machine has on disk: a bare "torch" pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
# timm (the layer-decay tests' reference) without its dependencies: they pull torchvision, a CUDA build.
TIMM_SPEC ?= timm==1.0.31
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
LINT_DIRS := $(wildcard src tests benchmarks examples) docs/conf.py docs/_ext
# Two stages: the demo installs only what it needs; the tests, lint and docs add their tools on top.
DEMO_STAMP := $(VENV)/.installed-demo
STAMP := $(VENV)/.installed
# Compiled kernels (Lion's C kernel, inductor's) are cached inside the venv too, unless the caller chose a folder.
export NOETHER_CACHE_DIR ?= $(CURDIR)/$(VENV)/cache/noether
export TORCHINDUCTOR_CACHE_DIR ?= $(CURDIR)/$(VENV)/cache/inductor

.PHONY: venv demo test lint docs bench clean

venv: $(STAMP)

# The first run installs for about 75 s (torch is most of it); pip's progress bars show how far it got.
$(DEMO_STAMP): pyproject.toml Makefile
	@echo "[1/3] creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "[2/3] installing $(TORCH_SPEC) (the CPU wheel; the longest step)"
	$(PY) -m pip install --disable-pip-version-check --progress-bar on "$(TORCH_SPEC)"
	@echo "[3/3] installing noether-optim with the demo's packages"
	$(PY) -m pip install --disable-pip-version-check --progress-bar on "$(TORCH_SPEC)" -e ".[demo]"
	touch $(DEMO_STAMP)

# Tests, lint and docs add their tools on top of the demo's environment.
$(STAMP): $(DEMO_STAMP)
	@echo "installing the test, lint, docs and framework packages into $(VENV) (first run only)"
	$(PIP) "$(TORCH_SPEC)" -e ".[dev]"
	$(PIP) --no-deps "$(TIMM_SPEC)"
	touch $(STAMP)

demo: $(DEMO_STAMP)
	$(VENV)/bin/noether-optim demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_DIRS)
	$(VENV)/bin/ruff format --check $(LINT_DIRS)
	$(VENV)/bin/mypy

docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

bench: $(STAMP)
	$(PY) benchmarks/bench_lion.py
	$(PY) benchmarks/bench_wrapper.py

clean:
	rm -rf $(VENV) build dist docs/_build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
