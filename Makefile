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
# The class's nbgrader exchange (README "Running a class"): nbgrader_config.py's
# c.Exchange.root, or EXCHANGE=dir.
EXCHANGE ?=
EXCHANGE_ROOT := $(if $(EXCHANGE),--Exchange.root=$(abspath $(EXCHANGE)))
# Extra arguments of `make lab`, e.g. LAB_ARGS="--no-browser --port=8888" on a server.
LAB_ARGS ?=
# nbgrader runs helper programs (alembic, jupyter) that must come from the environment.
export PATH := $(BIN):$(PATH)

LIB_SOURCES := $(shell find $(ROOT)/lib/vislearn -name '*.py')
EXECUTION_STAMP := $(ROOT)/_build/.vislearn-stamp

.PHONY: help setup book solutions-book test test-gpu lint release autograde feedback grades lab clean
.PHONY: validate release-exchange collect return-feedback report

help:
	@echo "make book       build the book into _build/html (every chapter executed)"
	@echo "make solutions-book  build the solutions site into _build/solutions/_build/html"
	@echo "make test       run the whole test suite"
	@echo "make lint       ruff check and format check"
	@echo "make lab        JupyterLab on the assignments"
	@echo "make validate   NOTEBOOK=path: does it run and pass its visible tests?"
	@echo "make release    regenerate assignments/ from solutions/ (ASSIGNMENT=... for one)"
	@echo "make grade      safe grading: students' code in a sandbox, feedback pages, the"
	@echo "                formgrader's notebooks (ASSIGNMENT=..., STUDENT=...,"
	@echo "                SCHEDULER=tcp://host:8786 for a Dask cluster)"
	@echo "make report     the instructor's report on the grading into report/ (REPORT_ARGS=--anonymous)"
	@echo "make grades     export all grades to grades.csv"
	@echo "make release-exchange ASSIGNMENT=name  release it to the class (nbgrader exchange)"
	@echo "make collect    collect each student's newest submission from the exchange"
	@echo "make return-feedback  put the safe grader's feedback in the exchange for students"
	@echo "make autograde  UNSAFE: plain nbgrader autograde (the students' code judges itself)"
	@echo "make feedback   UNSAFE: plain nbgrader feedback (shows students the hidden tests)"
	@echo "make test-gpu   the device-parametrised tests and the attention benchmark"

$(INSTALLED): $(ROOT)/requirements.txt $(ROOT)/lib/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-r $(ROOT)/requirements.txt -e $(ROOT)/lib
	touch $@

setup: $(INSTALLED)

# Cached notebook outputs are only valid for the vislearn that produced them: both the
# execution cache and Sphinx's parsed pages (which hold the outputs of unchanged chapters).
$(EXECUTION_STAMP): $(LIB_SOURCES)
	rm -rf $(ROOT)/_build/.jupyter_cache $(ROOT)/_build/.doctrees
	mkdir -p $(dir $@)
	touch $@

# The chapters not in the cache are executed in parallel first; the build takes them from it.
book: $(INSTALLED) $(EXECUTION_STAMP)
	cd $(ROOT) && $(BIN)/python -m tools.execute_notebooks
	cd $(ROOT) && $(BIN)/jupyter-book build . --warningiserror --keep-going

solutions-book: $(INSTALLED)
	cd $(ROOT) && $(BIN)/python -m tools.solutions_site

test: $(INSTALLED)
	cd $(ROOT) && $(BIN)/python -m pytest

# The library's tests on CUDA, then the attention benchmarks. Meant for a GPU machine that
# already has PyTorch (no set-up): `make test-gpu GPU_PYTHON=python3`.
GPU_PYTHON ?= $(BIN)/python
LIBRARY_TESTS = $(filter-out %test_course.py %test_book.py %test_browser.py %test_exchange.py \
	%test_student.py \
	%test_grader.py %test_lint.py,$(wildcard $(ROOT)/tests/test_*.py))
test-gpu:
	cd $(ROOT) && PYTHONPATH=$(ROOT)/lib $(GPU_PYTHON) -m pytest -p no:cacheprovider -q \
		-k cuda $(LIBRARY_TESTS)
	cd $(ROOT) && PYTHONPATH=$(ROOT)/lib $(GPU_PYTHON) benchmarks/attention.py --device cuda \
		--sizes 1024 4096 8192

lint: $(INSTALLED)
	cd $(ROOT) && $(BIN)/ruff check . && $(BIN)/ruff format --check .

lab: $(INSTALLED)
	cd $(ROOT)/assignments && $(BIN)/jupyter lab $(LAB_ARGS)

# Fails unless the notebook runs top to bottom and passes its visible tests.
validate: $(INSTALLED)
	@test -n "$(NOTEBOOK)" || { echo "usage: make validate NOTEBOOK=path/to/notebook.ipynb" >&2; exit 2; }
	$(NBGRADER) validate "$(abspath $(NOTEBOOK))" | awk '{ print } /^Success!/ { ok = 1 } END { exit !ok }'

release: $(INSTALLED)
	for a in $(ASSIGNMENT); do $(NBGRADER) generate_assignment $$a --force || exit 1; done

# Plain nbgrader (README "For instructors"): unsafe, and refused on an assignment the safe
# grader has graded, whose gradebook scores, autograded notebooks and feedback pages it would
# replace (the feedback then showing the hidden tests).
SAFELY_GRADED = if ls $(COURSE)/autograded/*/$$a/grading.json >/dev/null 2>&1; then \
	echo "$$a is graded by the safe grader (make grade): plain nbgrader would replace its" \
	"grades and feedback (with the hidden tests). Use make grade, or delete" \
	"autograded/*/$$a/grading.json first." >&2; exit 2; fi

autograde: $(INSTALLED)
	for a in $(ASSIGNMENT); do $(SAFELY_GRADED); \
		$(NBGRADER) autograde $$a --force || status=1; done; exit $${status:-0}

feedback: $(INSTALLED)
	for a in $(ASSIGNMENT); do $(SAFELY_GRADED); \
		$(NBGRADER) generate_feedback $$a --force || status=1; done; exit $${status:-0}

grades: $(INSTALLED)
	$(NBGRADER) export --to grades.csv

# Safe grading (README "Safe grading"): the students' code runs in a bubblewrap sandbox, the
# tests and references outside it. STUDENT=id grades one student; SCHEDULER=tcp://host:8786
# grades on a running Dask cluster (README "Grading on a cluster"); GRADE_ARGS adds options
# (e.g. GRADE_ARGS="--jobs 4 --resume", or "--no-sandbox" for trusted code without bwrap).
SCHEDULER ?=
.PHONY: grade
grade: $(INSTALLED)
	cd $(COURSE) && $(BIN)/python -m vislearn.grader $(ASSIGNMENT) --course $(COURSE) \
		$(if $(STUDENT),--student $(STUDENT)) $(if $(SCHEDULER),--scheduler $(SCHEDULER)) \
		$(GRADE_ARGS)

# The class through nbgrader's exchange (README "Running a class"). release-exchange publishes
# to every student, so it wants ASSIGNMENT named; it regenerates the release (and the
# gradebook's record of it) first, as `make release` does.
release-exchange: $(INSTALLED)
	@test "$(origin ASSIGNMENT)" != file || { echo "usage: make release-exchange ASSIGNMENT=name" >&2; exit 2; }
	for a in $(ASSIGNMENT); do $(NBGRADER) generate_assignment $$a --force && \
		$(NBGRADER) release_assignment $$a --force $(EXCHANGE_ROOT) || exit 1; done

collect: $(INSTALLED)
	for a in $(ASSIGNMENT); do $(NBGRADER) collect $$a --update $(EXCHANGE_ROOT) || exit 1; done

# The safe grader's feedback pages, through nbgrader's release_feedback (submissions placed
# in submitted/ by hand, which no student could fetch, are named and left out).
return-feedback: $(INSTALLED)
	cd $(COURSE) && $(BIN)/python -m vislearn.grader.feedback $(ASSIGNMENT) --course $(COURSE) \
		$(if $(EXCHANGE),--exchange $(abspath $(EXCHANGE)))

# The instructor's report (README "Running a class"): report/index.html, one page per
# assignment; REPORT_ARGS="--anonymous" for pseudonyms, "--out DIR" elsewhere.
REPORT_ARGS ?=
report: $(INSTALLED)
	cd $(COURSE) && $(BIN)/python -m vislearn.grader.report $(ASSIGNMENT) --course $(COURSE) \
		$(REPORT_ARGS)

clean:
	rm -rf $(ROOT)/_build
