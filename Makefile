# Shoal's front door. `make demo` and `make test` are the whole set-up on a fresh machine.
SHELL := /bin/bash
CARGO ?= cargo
SHOAL := target/release/shoal

.PHONY: all build test lint fmt unit demo bench toolchain python-deps python-test protos
PYTHON ?= python3
PYDEPS_STAMP := target/.python-deps-$(shell cat python/requirements-test.txt python/pyproject.toml 2>/dev/null | sha256sum | cut -c1-16)

all: build

# Rust toolchain components the checks need (rustup is on the machine; this is a no-op
# when they are installed).
toolchain:
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs)"; exit 1; }
	@cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
	@cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt

build: toolchain
	$(CARGO) build --release -p shoal

lint: toolchain
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Unit, property and integration tests (real scheduler and worker processes on 127.0.0.1).
unit: toolchain
	$(CARGO) test --workspace

# Python: pinned packages from PyPI and the shoal package in development mode (once per
# change of the pins).
python-deps: $(PYDEPS_STAMP)
$(PYDEPS_STAMP):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r python/requirements-test.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps -e python
	@mkdir -p target && touch $@

# Regenerates the Python gRPC stubs from proto/ (commit the result).
protos: python-deps
	$(PYTHON) python/gen_protos.py

# Python client, executors and Dask on a real local cluster (needs the release binary).
python-test: python-deps build
	$(PYTHON) python/gen_protos.py --check
	SHOAL_BIN=$(CURDIR)/$(SHOAL) $(PYTHON) -m pytest -q python/tests

test: lint unit python-test

fmt:
	$(CARGO) fmt --all

# The main job on the embedded default: a local cluster (scheduler + 2 workers as
# processes) runs a real Dask array reduction and a dataframe group-by (checked against
# Dask's threaded scheduler), then a million-task builtin graph; figures printed.
demo: build python-deps
	SHOAL_BIN=$(CURDIR)/$(SHOAL) SHOAL_LOG=warn $(PYTHON) examples/dask_demo.py
	@echo "== the runtime alone: a tree reduction of 1,000,000 builtin tasks =="
	SHOAL_LOG=warn $(SHOAL) bench --workers 2 --graph tree --tasks 1000000

# Runtime benchmarks at scale (figures printed; nothing asserted on time).
bench: build
	bench/runtime.sh
