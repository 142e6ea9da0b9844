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

# The main job at a CPU-sized budget: the quick-profile sweep of Table 1's rows 0, 8 and 3 (one
# seed) on the embedded corpus, evaluated while it trains, ending with the Table 1 excerpt and
# the address of the experiment's runs table in the MLflow UI (the analysis step prints both).
# One torch thread: the model is tiny, and two threads that wait for each other on busy cores are
# slow (measured, 40 steps beside two other busy processes: 167 s on two threads, 25 s on one;
# on idle cores 7 s and 9 s).
# Quiet logs: each step prints its own progress lines (pretrain: step, loss, tokens/s, ETA);
# Hugging Face's per-checkpoint "Writing model shards"/"Loading weights" bars, datasets' bars and
# MLflow's INFO lines (temporary directories, commands) are noise here.
demo: $(STAMP)
	OMP_NUM_THREADS=1 HF_HUB_DISABLE_PROGRESS_BARS=1 HF_DATASETS_DISABLE_PROGRESS_BARS=1 \
		MLFLOW_LOGGING_LEVEL=WARNING PATH="$(CURDIR)/$(BIN):$$PATH" \
		mlflow run . -e main --env-manager local \
		--experiment-name minimult-lab -P exps=0,8,3 -P seeds=42 -P profile=quick

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/hadolint Dockerfile deploy/mlflow-server.Dockerfile

# The tracking-server integration test runs PostgreSQL from Debian's packages.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; }

# Two test processes, a file per process at a time (a file's module fixtures are built once):
# most tests run one single-threaded process at a time, so a second one uses the second core.
test: lint postgresql
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=15
