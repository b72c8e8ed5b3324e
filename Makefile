# Shoal's front door. `make demo` and `make test` are the whole set-up on a fresh machine.
SHELL := /bin/bash
CARGO ?= cargo
# Build output; CI points CARGO_TARGET_DIR at a cache outside the clone so warm runs reuse it.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
SHOAL := $(TARGET_DIR)/release/shoal

.PHONY: all build test lint fmt unit demo bench toolchain python-deps python-test protos
PYTHON ?= python3

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

# Python: pinned packages from PyPI and this checkout's shoal package in development mode
# (a few seconds when they are already there).
python-deps:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r python/requirements-test.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps -e python

# Regenerates the Python gRPC stubs from proto/ (commit the result).
protos: python-deps
	$(PYTHON) python/gen_protos.py

# Python client, executors and Dask on a real local cluster (needs the release binary).
python-test: python-deps build
	$(PYTHON) python/gen_protos.py --check
	SHOAL_BIN=$(SHOAL) $(PYTHON) -m pytest -q python/tests

test: lint unit python-test

fmt:
	$(CARGO) fmt --all

# The main job on the embedded default: a local cluster (scheduler + 2 workers as
# processes) runs a real Dask array reduction and a dataframe group-by (checked against
# Dask's threaded scheduler), then a million-task builtin graph; figures printed.
demo: build python-deps
	SHOAL_BIN=$(SHOAL) SHOAL_LOG=warn $(PYTHON) examples/dask_demo.py
	@echo "== the runtime alone: a tree reduction of 1,000,000 builtin tasks =="
	SHOAL_LOG=warn $(SHOAL) bench --workers 2 --graph tree --tasks 1000000

# Runtime benchmarks at scale (figures printed; nothing asserted on time).
bench: build
	SHOAL_BIN=$(SHOAL) bench/runtime.sh
