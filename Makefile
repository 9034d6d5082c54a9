# Every target bootstraps .venv from the project's own files, idempotently.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
RUN_STAMP := $(VENV)/.installed-run
HANDLER ?= handlers.echo.handler
QUICK ?=

.PHONY: run test lint bench venv clean

venv: $(STAMP)

# The compiled extensions are part of the install: editing ext/ must rebuild them.
$(STAMP): pyproject.toml setup.py $(wildcard ext/*.pyx ext/*.h)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

# `make run` needs the runtime dependencies only: a fresh machine serves in under a minute.
$(RUN_STAMP): pyproject.toml setup.py $(wildcard ext/*.pyx ext/*.h)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e .
	touch $(RUN_STAMP)

run: $(RUN_STAMP)
	$(VENV)/bin/worker serve $(HANDLER)

# The dashboard's end-to-end test drives Debian's chromium, headless.
test: $(STAMP)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# wrk saturates the servers; it comes from Debian's packages.
bench: $(STAMP)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) -m bench.run $(if $(QUICK),--quick,--docs)

clean:
	rm -rf $(VENV) build *.egg-info worker/*.so
