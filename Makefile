# Quick start: `make dev` (UI on http://127.0.0.1:3000) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_PLATFORM_HOME ?= $(CURDIR)/.data
DAGSTER_HOME ?= $(DATA_PLATFORM_HOME)/dagster
export DATA_PLATFORM_HOME DAGSTER_HOME

.PHONY: install instance dev demo test bench bench-ml mlflow-ui catalog clean dataset-new dataset-check

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

install: $(BIN)/.installed

# The instance config in $(DAGSTER_HOME), rewritten on every use: dagster.yaml, plus PostgreSQL
# instance storage (dagster.postgres.yaml) when DAGSTER_PG_URL is set.
INSTANCE_CONFIG := dagster.yaml $(if $(DAGSTER_PG_URL),dagster.postgres.yaml)
instance:
	mkdir -p $(DAGSTER_HOME)
	cat $(INSTANCE_CONFIG) > $(DAGSTER_HOME)/dagster.yaml

dev: install instance
	$(BIN)/dagster dev --host 127.0.0.1 --port 3000

demo: install instance
	$(BIN)/python -m data_platform demo

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/run.py

bench-ml: install
	$(BIN)/python benchmarks/bench_ml.py

# MLflow UI over the platform's store (runs, metrics, datasets, registered models and aliases).
mlflow-ui: install
	mkdir -p $(DATA_PLATFORM_HOME)/mlflow/artifacts
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(DATA_PLATFORM_HOME)/mlflow/mlflow.db \
		--default-artifact-root $(DATA_PLATFORM_HOME)/mlflow/artifacts --host 127.0.0.1 --port 5000

catalog: install instance
	$(BIN)/python -m data_platform catalog

# Online scoring service on http://127.0.0.1:8000 (reads the online store and the MLflow registry).
.PHONY: serve bench-serving
serve: install
	$(BIN)/python -m data_platform serve --host 127.0.0.1 --port 8000

bench-serving: install
	$(BIN)/python benchmarks/bench_serving.py

clean:
	rm -rf $(DATA_PLATFORM_HOME)

# Datasets as contract files (README, "Add a dataset"): draft one from a sample file, validate them.
#   make dataset-new NAME=co2 FROM=path/to/sample.csv [TIME_COLUMN=date] [TIME_FORMAT=%Y%m%d]
#   make dataset-check [FILES="datasets/co2.odcs.yaml ..."]   (every contract when FILES is empty)
dataset-new: install
	@test -n "$(NAME)" -a -n "$(FROM)" || { echo "usage: make dataset-new NAME=name FROM=sample.csv [TIME_COLUMN=col] [TIME_FORMAT=%Y/%m/%d]"; exit 2; }
	$(BIN)/python -m data_platform dataset new '$(NAME)' --from '$(FROM)' \
		$(if $(TIME_COLUMN),--time-column '$(TIME_COLUMN)') $(if $(TIME_FORMAT),--time-format '$(TIME_FORMAT)')

dataset-check: install
	$(BIN)/python -m data_platform dataset check $(FILES)
