# One entry point. `make book` builds the HTML book, `make test` runs every test.
# Both set up .venv/ first and skip what is already done.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cnnbook-installed
DATA_STAMP := data/.verified
JOBS ?= 2

.PHONY: help setup data assets book test unit notebooks bench check-html student clean

help:
	@echo "make book   - set up, execute every notebook, build the HTML into _build/html"
	@echo "make test   - set up, then run the unit tests and every notebook (nbval)"
	@echo "make bench  - run the benchmarks under benchmarks/"

# Python environment: pinned requirements plus cnnbook itself (editable).
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

# Fashion-MNIST: Debian's package where apt is present and we are root, else torchvision's download.
$(DATA_STAMP): $(STAMP) cnnbook/data.py
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; fi
	$(PY) -m cnnbook.pytorch.data
	@mkdir -p data && touch $@

ASSETS_STAMP := _vendor/.installed

# Widget manager, require.js and MathJax for the offline HTML: pinned npm packages, not committed.
$(ASSETS_STAMP): scripts/vendor_assets.sh
	bash scripts/vendor_assets.sh

setup: $(STAMP) $(DATA_STAMP)
data: $(DATA_STAMP)
assets: $(ASSETS_STAMP)

book: setup $(ASSETS_STAMP)
	rm -rf _build/html _build/jupyter_execute
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "Book built: file://$(CURDIR)/_build/html/index.html"

unit: setup
	$(PY) -m pytest tests -n $(JOBS)

notebooks: setup
	$(PY) -m pytest book --nbval-lax --nbval-current-env -n $(JOBS) --dist loadfile

test: setup
	$(PY) -m pytest tests book --nbval-lax --nbval-current-env -n $(JOBS) --dist loadfile

check-html: book
	$(PY) scripts/check_html.py

student: setup
	$(PY) -m cnnbook.book.student

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf _build .pytest_cache
