# Transformers and Beyond: every command of the course. Run `make help` for the list.
#
# Set-up is automatic: each target depends on the virtual environment, which is (re)built
# only when requirements.txt or lib/pyproject.toml change.

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
PYTHON ?= python3
VENV ?= $(ROOT)/.venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# The nbgrader course directory (holds nbgrader_config.py, solutions/, submitted/, ...).
COURSE ?= $(ROOT)
# Assignments to act on: all of them by default, or e.g. ASSIGNMENT=a0_softmax.
ASSIGNMENT ?= $(notdir $(patsubst %/,%,$(wildcard $(ROOT)/solutions/*/)))
NBGRADER := cd $(COURSE) && $(BIN)/nbgrader
# nbgrader runs helper programs (alembic, jupyter) that must come from the environment.
export PATH := $(BIN):$(PATH)

LIB_SOURCES := $(shell find $(ROOT)/lib/vislearn -name '*.py')
EXECUTION_STAMP := $(ROOT)/_build/.vislearn-stamp

.PHONY: help setup book solutions-book test test-gpu lint release autograde feedback grades lab clean

help:
	@echo "make book       build the book into _build/html (every chapter executed)"
	@echo "make solutions-book  build the solutions site into _build/solutions/_build/html"
	@echo "make test       run the whole test suite"
	@echo "make lint       ruff check and format check"
	@echo "make lab        JupyterLab on the assignments"
	@echo "make release    regenerate assignments/ from solutions/ (ASSIGNMENT=... for one)"
	@echo "make autograde  autograde every submission in submitted/ (ASSIGNMENT=...)"
	@echo "make feedback   generate feedback for autograded submissions (ASSIGNMENT=...)"
	@echo "make grades     export all grades to grades.csv"
	@echo "make test-gpu   the device-parametrised tests and the attention benchmark"

$(INSTALLED): $(ROOT)/requirements.txt $(ROOT)/lib/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-r $(ROOT)/requirements.txt -e $(ROOT)/lib
	touch $@

setup: $(INSTALLED)

# Cached notebook outputs are only valid for the vislearn that produced them.
$(EXECUTION_STAMP): $(LIB_SOURCES)
	rm -rf $(ROOT)/_build/.jupyter_cache
	mkdir -p $(dir $@)
	touch $@

book: $(INSTALLED) $(EXECUTION_STAMP)
	cd $(ROOT) && $(BIN)/jupyter-book build . --warningiserror --keep-going

solutions-book: $(INSTALLED)
	cd $(ROOT) && $(BIN)/python tools/solutions_site.py

test: $(INSTALLED)
	cd $(ROOT) && $(BIN)/python -m pytest

# The library's tests on CUDA, then the attention benchmarks. Meant for a GPU machine that
# already has PyTorch (no set-up): `make test-gpu GPU_PYTHON=python3`.
GPU_PYTHON ?= $(BIN)/python
LIBRARY_TESTS = $(filter-out %test_course.py %test_book.py %test_browser.py %test_exchange.py \
	%test_grader.py %test_lint.py,$(wildcard $(ROOT)/tests/test_*.py))
test-gpu:
	cd $(ROOT) && PYTHONPATH=$(ROOT)/lib $(GPU_PYTHON) -m pytest -p no:cacheprovider -q \
		-k cuda $(LIBRARY_TESTS)
	cd $(ROOT) && PYTHONPATH=$(ROOT)/lib $(GPU_PYTHON) benchmarks/attention.py --device cuda \
		--sizes 1024 4096 8192

lint: $(INSTALLED)
	cd $(ROOT) && $(BIN)/ruff check . && $(BIN)/ruff format --check .

lab: $(INSTALLED)
	cd $(ROOT)/assignments && $(BIN)/jupyter lab

release: $(INSTALLED)
	for a in $(ASSIGNMENT); do $(NBGRADER) generate_assignment $$a --force || exit 1; done

autograde: $(INSTALLED)
	for a in $(ASSIGNMENT); do $(NBGRADER) autograde $$a --force || status=1; done; exit $${status:-0}

feedback: $(INSTALLED)
	for a in $(ASSIGNMENT); do $(NBGRADER) generate_feedback $$a --force || status=1; done; exit $${status:-0}

grades: $(INSTALLED)
	$(NBGRADER) export --to grades.csv

clean:
	rm -rf $(ROOT)/_build
