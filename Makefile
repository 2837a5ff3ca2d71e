# modadd — set-up and entry points. On a fresh machine: `make book` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
MATHJAX_VERSION ?= 3.2.2

BIN     := $(VENV)/bin
STAMP   := $(VENV)/.stamp
MATHJAX := _extra/mathjax/tex-mml-chtml.js
# Keep tool state inside the project (hermetic builds); never set MPLBACKEND globally: it strips
# the figures from executed notebooks.
export JUPYTER_DATA_DIR := $(CURDIR)/.cache/jupyter
export MPLCONFIGDIR     := $(CURDIR)/.cache/matplotlib
export IPYTHONDIR       := $(CURDIR)/.cache/ipython
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# IPython only uses IPYTHONDIR if its parent exists, so every tool recipe makes .cache first.
BOOK_BUILD := mkdir -p .cache && MODADD_NO_TRAIN=1 $(BIN)/jupyter-book build --all .

.PHONY: help venv mathjax book test unit study bench sweep clean distclean

help:
	@echo "make book   - set up, execute the notebooks on committed results, build _build/html"
	@echo "make test   - set up, unit tests + smoke-run every notebook + book build (no training)"
	@echo "make study  - retrain every run at the book preset, then build the book"
	@echo "make bench  - training throughput, FLOP rate vs. matmul rate, data-generation share"
	@echo "make sweep SPEC=sweeps/smoke.yaml - run a notebook over a parameter grid (resumable)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[book,test]"
	touch $@

venv: $(STAMP)

# MathJax 3 from npm, served with the book, so math renders offline (Sphinx defaults to a CDN).
$(MATHJAX):
	npm install --prefix .cache/npm --no-audit --no-fund --silent mathjax@$(MATHJAX_VERSION)
	mkdir -p _extra/mathjax/output/chtml/fonts
	cp -r .cache/npm/node_modules/mathjax/es5/output/chtml/fonts/woff-v2 \
		_extra/mathjax/output/chtml/fonts/
	cp .cache/npm/node_modules/mathjax/es5/tex-mml-chtml.js $@

mathjax: $(MATHJAX)

book: $(STAMP) $(MATHJAX)
	$(BOOK_BUILD)
	@echo "Book built: open file://$(CURDIR)/_build/html/index.html"

unit: $(STAMP)
	mkdir -p .cache
	$(BIN)/python -m pytest -q tests

test: unit $(MATHJAX)
	$(BOOK_BUILD) --warningiserror --nitpick --keep-going

study: $(STAMP)
	mkdir -p .cache
	$(BIN)/python -m modadd.study
	$(MAKE) book

bench: $(STAMP)
	mkdir -p .cache
	$(BIN)/python -m modadd.bench

# SPEC: a sweep spec (sweeps/*.yaml); ARGS: e.g. --workers 2, --dask-local 2, --retry-failed.
sweep: $(STAMP)
	@test -n "$(SPEC)" || { echo "usage: make sweep SPEC=sweeps/smoke.yaml [ARGS='--workers 2']"; exit 2; }
	mkdir -p .cache
	$(BIN)/python -m modadd.sweep $(SPEC) $(ARGS)

# Keeps the venv; MathJax is re-fetched from npm by the next build (seconds).
clean:
	rm -rf _build .cache _extra .pytest_cache notebooks/.ipynb_checkpoints

distclean: clean
	rm -rf $(VENV) modadd.egg-info
