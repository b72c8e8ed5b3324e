# Shoal's front door. `make demo` and `make test` are the whole set-up on a fresh machine.
SHELL := /bin/bash
CARGO ?= cargo
SHOAL := target/release/shoal

.PHONY: all build test lint fmt unit demo bench toolchain

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

test: lint unit

fmt:
	$(CARGO) fmt --all

# The main job on the embedded default: a local cluster (scheduler + 2 workers as
# processes) runs builtin-task graphs; results are checked and figures printed.
demo: build
	@echo "== tree reduction, 200,000 tasks =="
	SHOAL_LOG=warn $(SHOAL) bench --workers 2 --graph tree --tasks 200000
	@echo "== map, 100,000 tasks, every result gathered =="
	SHOAL_LOG=warn $(SHOAL) bench --workers 2 --graph map --tasks 100000
	@echo "== shuffle (all-to-all), 100,000 tasks =="
	SHOAL_LOG=warn $(SHOAL) bench --workers 2 --graph shuffle --tasks 100000

# Runtime benchmarks at scale (figures printed; nothing asserted on time).
bench: build
	bench/runtime.sh
