# One entry point. `make book` builds the HTML book, `make test` runs every test.
# Both set up .venv/ first and skip what is already done.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cnnbook-installed
DATA_STAMP := data/.verified
JOBS ?= 2

.PHONY: help setup data assets book test unit notebooks bench check-html check-lab colab-check \
        student nbgrader nbgrader-check lab lab-teacher clean

help:
	@echo "make book   - set up, execute every notebook, build the HTML into _build/html"
	@echo "make test   - set up, then run the unit tests and every notebook (nbval)"
	@echo "make lab    - set up, write the student edition, open it in JupyterLab (live widgets)"
	@echo "make bench  - run the benchmarks under benchmarks/"
	@echo "make colab-check / check-lab / nbgrader-check - the Colab, JupyterLab and nbgrader checks (CI)"

# Python environment: pinned requirements plus cnnbook itself (editable).
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

# Fashion-MNIST: Debian's package where apt is present and we are root, else torchvision's download.
$(DATA_STAMP): $(STAMP) cnnbook/pytorch/data.py
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
	$(PY) -m pytest tests cnnbook --doctest-modules -n $(JOBS)

# One notebook at a time: each kernel's torch and BLAS threads already use every core, and two
# kernels side by side spin against each other and run several times slower than one after the other.
notebooks: setup
	$(PY) -m pytest book --nbval-lax --nbval-current-env

# The unit tests and the package's doctests (every example in a docstring), then every notebook.
test: unit notebooks

check-html: book
	$(PY) scripts/check_html.py

# JupyterLab in the browser: a live widget redrawn by the kernel, and "Restart Kernel and Run All".
check-lab: setup
	$(PY) scripts/check_lab.py

# A fresh Python 3.12 environment with the oldest versions pyproject.toml allows, cnnbook
# installed as the notebooks' Colab cell does; runs chapters 1 and 2 and every chapter's imports.
colab-check: setup
	$(PY) scripts/colab_check.py

student: setup
	$(PY) -m cnnbook.book.student

# Students open the student edition (no solutions); teachers and authors open book/.
lab: student
	$(VENV)/bin/jupyter lab student/

lab-teacher: setup
	$(VENV)/bin/jupyter lab book/

# nbgrader's source folder (one assignment per chapter) for teachers: see README, "Teaching with nbgrader".
nbgrader: setup
	$(PY) -m cnnbook.book.student --nbgrader --out nbgrader/source

# nbgrader 0.9.6 in its own cached venv: generate_assignment on every chapter, no leak,
# autograde of the release (0 points) and of the teacher's solutions (full points).
nbgrader-check: setup
	$(PY) scripts/nbgrader_check.py

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf _build .pytest_cache
