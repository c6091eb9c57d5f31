# Two commands on a fresh machine:  make lab  (JupyterLab on notebooks/)  and  make test.
# Both create the environment in $(ENV) when it is missing: a venv from python3 >= 3.10 when there is
# one, else a conda env from environment.yml.  ENV_TOOL=conda forces conda.
SHELL := /bin/bash
ENV ?= .venv
BASE_PYTHON ?= $(shell for p in python3.11 python3.12 python3.10 python3; do \
	command -v $$p >/dev/null && $$p -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null && { echo $$p; break; }; done)
CONDA ?= $(shell command -v mamba || command -v conda)
ENV_TOOL ?= $(if $(BASE_PYTHON),venv,conda)
PY := $(ENV)/bin/python
STAMP := $(ENV)/.m2v_lab-installed
PYTEST_ARGS ?=
export HF_HUB_OFFLINE ?= 1

.PHONY: lab test env unit notebooks benchmarks execute-notebooks clean-env

env: $(STAMP)

$(STAMP): pyproject.toml environment.yml
ifeq ($(ENV_TOOL),conda)
	@test -n "$(CONDA)" || { echo "Neither python >= 3.10 nor conda/mamba found: install one of them."; exit 1; }
	$(CONDA) env create --yes -p $(ENV) -f environment.yml
else
	@test -x $(PY) || $(BASE_PYTHON) -m venv $(ENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: on this project's CI machines it is a local CPU wheel (no CUDA download)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	# tinysoundfont renders the teaching set; --no-deps skips pyaudio, which it needs only for live playback
	$(PY) -m pip install --quiet --no-deps "tinysoundfont>=0.3"
endif
	@touch $(STAMP)

# Jupyter refuses to start as root ("Running as root is not recommended"), yet containers and cloud
# notebooks run as root: pass --allow-root there only (effective uid 0), so a normal user keeps the check.
LAB_ALLOW_ROOT = $(if $(filter 0,$(shell id -u)),--allow-root)
# Extra options for jupyter lab, e.g. LAB_ARGS="--no-browser --port=8890" (the test serves on its own port).
LAB_ARGS ?=

lab: $(STAMP)
	HF_HUB_OFFLINE= $(ENV)/bin/jupyter lab $(LAB_ALLOW_ROOT) $(LAB_ARGS) notebooks/

test: $(STAMP)
	$(PY) -m pytest tests notebooks --nbval --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider $(PYTEST_ARGS)

unit: $(STAMP)
	$(PY) -m pytest tests $(PYTEST_ARGS)

notebooks: $(STAMP)
	$(PY) -m pytest notebooks --nbval --nbval-sanitize-with notebooks/sanitize.cfg $(PYTEST_ARGS)

# Re-run every notebook top to bottom and save its outputs (after changing a notebook or the package).
execute-notebooks: $(STAMP)
	for nb in notebooks/*.ipynb; do $(ENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=1200 --ExecutePreprocessor.store_widget_state=False "$$nb" || exit 1; done

benchmarks: $(STAMP)
	for b in extract similarity probing; do $(PY) benchmarks/$$b.py || exit 1; done

clean-env:
	rm -rf $(ENV)
