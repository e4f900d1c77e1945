# Two commands: `make test` and `make demo`. Both work on a fresh clone. `make help` lists the
# targets and the variables that change them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
PACKAGES := config studyapp distillation analysis studyformats
# The torch build installed first. From the public index, torch on Linux x86-64 is the CUDA
# build (about 17 nvidia packages, several GB). A CPU-only machine wants PyTorch's CPU wheel
# index: make install TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=
TORCH_INDEX_ARG := $(if $(strip $(TORCH_INDEX_URL)),--index-url $(strip $(TORCH_INDEX_URL)))

.PHONY: help test demo demo-port-check install lint typecheck pytest clean

help:
	@echo "Targets:"
	@echo "  make install    create .venv, install torch ($(TORCH_SPEC)), then the project and its dev tools"
	@echo "  make test       ruff, the import contracts, mypy and the whole pytest suite"
	@echo "  make demo       train the demo students, open the demo studies, serve on http://$(HOST):$(PORT)"
	@echo "  make lint | make typecheck | make pytest | make clean"
	@echo "Variables (make VARIABLE=value TARGET):"
	@echo "  PYTHON           interpreter that creates .venv, 3.11 or newer (now: $(PYTHON))"
	@echo "  TORCH_SPEC       torch package spec installed first (now: $(TORCH_SPEC))"
	@echo "  TORCH_INDEX_URL  index torch comes from; empty: the public index (now: $(or $(strip $(TORCH_INDEX_URL)),empty))"
	@echo "                   CPU only: TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu"
	@echo "  HOST, PORT       where make demo serves (now: $(HOST) and $(PORT))"
	@echo "  PYTEST_ARGS      extra arguments for pytest (now: $(or $(PYTEST_ARGS),none))"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, so that the project's own `torch` requirement is already met and pip never
# picks a build for it.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH_INDEX_ARG) '$(TORCH_SPEC)'
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache --no-logo

typecheck: $(STAMP)
	$(BIN)/mypy $(PACKAGES)

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# Stops `make demo` before the minutes of training when something already listens on PORT.
demo-port-check: | $(BIN)/python
	@$(BIN)/python -c "import socket, sys; s = socket.socket(); s.settimeout(2); \
	sys.exit('make demo: $(HOST):$(PORT) is already in use; choose another port: make demo PORT=8001') \
	if s.connect_ex(('$(HOST)', $(PORT))) == 0 else None"

demo: $(STAMP) demo-port-check
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py run_distillation
	$(BIN)/python manage.py demo_setup --base-url http://$(HOST):$(PORT)
	@echo "Site:   http://$(HOST):$(PORT)/"
	@echo "Admin:  http://$(HOST):$(PORT)/admin/"
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .mypy_cache .ruff_cache
