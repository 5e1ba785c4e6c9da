# The verbs of the project. Every target sets up what it needs: a fresh machine with Python
# 3.11 and Go can run `make run` and `make test` straight away.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test unit crds check-crds cluster-up cluster-down binaries clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## Run the operator on a local control plane with the samples applied (Ctrl-C stops all).
run: $(STAMP)
	$(BIN)/hardening-operator dev

## The whole suite against a real local control plane (builds its binaries on first use).
test: $(STAMP) binaries
	$(BIN)/pytest $(PYTEST_ARGS)

## Only the fast tests of pure functions.
unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

## Build (once) and cache the control plane binaries, with progress.
binaries: $(STAMP)
	$(BIN)/python -c 'from hardening_operator.controlplane.binaries import ensure_binaries; ensure_binaries()'

## Regenerate the CRD from the API models.
crds: $(STAMP)
	$(BIN)/hardening-operator crd > crds/hardening.plumbing.ai_hardeningprofiles.yaml

cluster-up: $(STAMP)
	@$(BIN)/hardening-operator cluster up

cluster-down: $(STAMP)
	@$(BIN)/hardening-operator cluster down

clean:
	rm -rf $(VENV) build *.egg-info operator/*.egg-info
