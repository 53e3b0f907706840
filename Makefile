# Quick start: `make dev` (UI on http://127.0.0.1:3000) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_PLATFORM_HOME ?= $(CURDIR)/.data
DAGSTER_HOME ?= $(DATA_PLATFORM_HOME)/dagster
export DATA_PLATFORM_HOME DAGSTER_HOME

# `make dev` ports (all on 127.0.0.1) and the URLs that links in the UI point to.
DAGSTER_UI_PORT ?= 3000
DAGSTER_CODE_PORT ?= 4266
MLFLOW_UI_PORT ?= 5000
REPORTS_PORT ?= 8080
DATA_PLATFORM_MLFLOW_UI_URL ?= http://127.0.0.1:$(MLFLOW_UI_PORT)
DATA_PLATFORM_REPORTS_URL ?= http://127.0.0.1:$(REPORTS_PORT)
DATA_PLATFORM_UI_URL ?= http://127.0.0.1:$(DAGSTER_UI_PORT)
export DAGSTER_UI_PORT DAGSTER_CODE_PORT MLFLOW_UI_PORT REPORTS_PORT
export DATA_PLATFORM_MLFLOW_UI_URL DATA_PLATFORM_REPORTS_URL DATA_PLATFORM_UI_URL

# `make dev DASK_WORKERS=2`: a local Dask cluster (scheduler and N single-thread workers) beside the UI,
# and the platform's data work on it (DATA_PLATFORM_DASK_SCHEDULER; see README, "Scaling out").
DASK_WORKERS ?= 0
DASK_SCHEDULER_PORT ?= 8786
DASK_DASHBOARD_PORT ?= 8787
ifneq ($(DASK_WORKERS),0)
DATA_PLATFORM_DASK_SCHEDULER ?= tcp://127.0.0.1:$(DASK_SCHEDULER_PORT)
export DATA_PLATFORM_DASK_SCHEDULER
endif
export DASK_WORKERS DASK_SCHEDULER_PORT DASK_DASHBOARD_PORT

.PHONY: install instance dev demo test test-fast bench bench-ml mlflow-ui catalog clean dataset-new dataset-check \
	datacontract

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# `install` also brings the package's bytecode up to date (a no-op when it is): an editable install
# leaves it uncompiled, and where PYTHONDONTWRITEBYTECODE is set (containers, CI) every process that
# imports the code location (code server, daemon, each run) would compile it again, about 0.1 s each.
install: $(BIN)/.installed
	@$(BIN)/python -m compileall -q data_platform

# datacontract-cli (pinned, with everything it installs) in its own environment: it pins an older
# DuckDB than the platform's. The tests run it on the contracts (data_platform_tests/datacontract_cli.py).
DATACONTRACT_VENV := .venv-datacontract
$(DATACONTRACT_VENV)/.installed: requirements-datacontract.lock
	$(PYTHON) -m venv $(DATACONTRACT_VENV)
	$(DATACONTRACT_VENV)/bin/pip install --quiet -r requirements-datacontract.lock
	touch $@

datacontract: $(DATACONTRACT_VENV)/.installed

# The instance config in $(DAGSTER_HOME), rewritten on every use: dagster.yaml, plus PostgreSQL
# instance storage (dagster.postgres.yaml) when DAGSTER_PG_URL is set.
INSTANCE_CONFIG := dagster.yaml $(if $(DAGSTER_PG_URL),dagster.postgres.yaml)
instance:
	mkdir -p $(DAGSTER_HOME)
	cat $(INSTANCE_CONFIG) > $(DAGSTER_HOME)/dagster.yaml

# The Dagster code server, webserver and daemon, the MLflow UI and the drift report server under
# honcho (Procfile); Ctrl-C or SIGTERM stops them all. The workspace points both Dagster
# processes at the one code server.
dev: install instance
	mkdir -p $(DATA_PLATFORM_HOME)/mlflow/artifacts $(DATA_PLATFORM_HOME)/reports/drift
	printf 'load_from:\n  - grpc_server: {host: 127.0.0.1, port: %s, location_name: data_platform}\n' \
		$(DAGSTER_CODE_PORT) > $(DAGSTER_HOME)/workspace.yaml
	@echo "Dagster UI      $(DATA_PLATFORM_UI_URL)"
	@echo "MLflow UI       $(DATA_PLATFORM_MLFLOW_UI_URL)"
	@echo "drift reports   $(DATA_PLATFORM_REPORTS_URL)/drift/"
	$(if $(filter-out 0,$(DASK_WORKERS)),@echo "Dask dashboard  http://127.0.0.1:$(DASK_DASHBOARD_PORT)/status ($(DASK_WORKERS) workers)")
	@echo "(Ctrl-C stops them all)"
	cat Procfile $(if $(filter-out 0,$(DASK_WORKERS)),Procfile.dask) > $(DAGSTER_HOME)/Procfile
	$(BIN)/honcho -f $(DAGSTER_HOME)/Procfile -d $(CURDIR) start --no-colour

demo: install instance
	$(BIN)/python -m data_platform demo

# Two workers, one test module each at a time: the end-to-end module (one `make dev`, its browser
# tests included) runs beside the rest.
test: install datacontract
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=12

# The inner loop: everything but the tests that start real servers and browsers (marker real_process).
test-fast: install datacontract
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not real_process"

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
