# One-word entry points. `make quickstart` sets everything up on a fresh machine and runs the demo;
# `make test` sets up (if needed) and runs the unit tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# CPU build that installs on a laptop. GPU users: create .venv and install their CUDA torch first
# (see README); setup keeps an existing torch.
TORCH ?= torch==2.13.0
QUICKSTART_OUT ?= quickstart_out
# sam2 is installed without its declared deps (its torchvision does not import beside the CPU torch, and
# sam2sod never needs it), so pip's check would print "ERROR: sam2 1.1.0 requires torchvision": skip that check.
NO_TV_WARNING := --no-warn-conflicts

.PHONY: setup test test-slow test-browser quickstart lint bench docs clean

setup: $(VENV)/.sam2sod-installed

$(VENV)/.sam2sod-installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH)"
	SAM2_BUILD_CUDA=0 $(PIP) install -q --no-deps --no-build-isolation sam2==1.1.0
	$(PIP) install -q $(NO_TV_WARNING) -e ".[dev]"
	touch $@

test: setup
	$(VENV)/bin/pytest -q

test-slow: setup
	$(VENV)/bin/pytest -q -m slow

# The demo's end-to-end test in headless Chromium: Debian's package (playwright cannot download its own
# browser here; needs root or sudo for apt-get) plus the demo/browser extras.
CHROMIUM ?= /usr/bin/chromium
test-browser: setup
	test -x $(CHROMIUM) || apt-get install -y chromium || sudo apt-get install -y chromium
	$(PIP) install -q $(NO_TV_WARNING) -e ".[dev,demo,browser]"
	SAM2SOD_CHROMIUM=$(CHROMIUM) $(VENV)/bin/pytest -q -m browser

quickstart: setup
	$(VENV)/bin/sam2sod quickstart --out $(QUICKSTART_OUT)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

bench: setup
	$(PY) benchmarks/score_speed.py

# The docs site (mkdocs.yml, docs/) into site/; --strict fails on a broken link or a missing page. The API
# reference is read from src/ by static analysis: no torch import at build time.
docs: setup
	$(PY) -c "import material, mkdocs, mkdocstrings_handlers.python" 2>/dev/null || $(PIP) install -q -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) $(QUICKSTART_OUT) .pytest_cache .ruff_cache
