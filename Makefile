# mlmprep developer commands. Each target creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAMPLE := mlmprep/data/sample
DEMO_OUT := demo-out

.PHONY: demo test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-fast: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[fast]"
	touch $(VENV)/.installed $@

# The trainers' readers the exports are tested with, without their pins: lddl (NVIDIA's
# loader) pins 2021 releases of dask, transformers and mpi4py that lddl.torch does not use;
# megatron-core's IndexedDataset needs only numpy and torch, which [dev] has.
$(VENV)/.installed-dev: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps lddl==0.1.0 megatron-core==0.16.1
	touch $(VENV)/.installed $(VENV)/.installed-fast $@

demo: $(VENV)/.installed
	$(BIN)/mlmprep build $(SAMPLE) $(DEMO_OUT) --overwrite
	$(BIN)/mlmprep stats $(DEMO_OUT)
	$(BIN)/mlmprep show $(DEMO_OUT) -n 1

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check mlmprep tests benchmarks examples
	$(BIN)/ruff format --check mlmprep tests benchmarks examples

format: $(VENV)/.installed-dev
	$(BIN)/ruff format mlmprep tests benchmarks examples
	$(BIN)/ruff check --fix mlmprep tests benchmarks examples

bench: $(VENV)/.installed-fast  # kitoken too: the benchmark compares both backends
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/plan_accuracy.py  # planned against measured: memory, time
	$(BIN)/python benchmarks/recipe_bench.py  # a two-phase recipe against two plain builds
	$(BIN)/python benchmarks/packing_bench.py  # packed batches: fill and rows/s
	$(BIN)/python benchmarks/export_bench.py  # exports: rows/s at 1 and 2 workers
	$(BIN)/python benchmarks/scale_table.py  # the plan at 1 GB to 8 TB on 1 to 1,000 workers
	$(BIN)/python benchmarks/cluster_plan_check.py  # the plan against 2-worker Dask and Ray runs

clean:
	rm -rf $(VENV) .venv-readers $(DEMO_OUT) .pytest_cache .ruff_cache build *.egg-info
