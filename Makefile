# The commands people and CI run. `make test` and `make demo` set up .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The scanning core is compiled with mypyc as it is installed (setup.py, tapeproxy/native.py);
# after an edit of one of its sources it runs from source until it is compiled again, here.
NATIVE := $(VENV)/.compiled
COMPILED_SOURCES := $(wildcard tapeproxy/redaction/*.py) setup.py tapeproxy/native.py

.PHONY: test lint typecheck pytest demo bench clean venv docker-test

venv: $(NATIVE)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' || { \
	  echo "tapeproxy needs Python 3.12 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>&1)."; \
	  echo "Install 3.12 (pyenv install 3.12) or run: make $(MAKECMDGOALS) PYTHON=/path/to/python3.12"; \
	  exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

$(NATIVE): $(STAMP) $(COMPILED_SOURCES)
	@$(BIN)/python -c 'import sys, tapeproxy.native as n; sys.exit(not n.fresh())' \
	  || $(BIN)/python -m pip install --quiet --no-deps -e .
	@$(BIN)/python -c 'import tapeproxy.native as n; n.fresh() or print("tapeproxy: the scanning core is not compiled (no C compiler, or mypyc failed: pip install -v -e . says why); it runs as plain Python")'
	@touch $(NATIVE)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy tapeproxy

pytest: $(NATIVE)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

test: lint typecheck pytest

demo: $(NATIVE)
	$(BIN)/tapeproxy demo

# The image itself with podman (not part of `make test`): build, serve a cassette with proxy
# authentication, refuse a client without it. Needs: apt-get install -y podman runc mmdebstrap
docker-test: $(STAMP)
	$(BIN)/python tools/docker_test.py

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) $(NATIVE)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info *.so tapeproxy/native.json tapeproxy/redaction/*.so
