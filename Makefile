# The README's two commands. Each creates the virtual environment and installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint postgresql

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch from local disk first, so nothing pulls the multi-GB CUDA wheels.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The main job at a CPU-sized budget: prepare, pretrain `original` for 3 epochs, evaluate.
demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" mlflow run . -e prepare --env-manager local
	PATH="$(CURDIR)/$(BIN):$$PATH" mlflow run . -e pretrain --env-manager local \
		-P exp=original -P epochs=3 -P eval_every=125

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/hadolint Dockerfile deploy/mlflow-server.Dockerfile

# The tracking-server integration test runs PostgreSQL from Debian's packages.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; }

test: lint postgresql
	$(BIN)/pytest -q
