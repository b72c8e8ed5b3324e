# Shoal's front door. `make demo` and `make test` are the whole set-up on a fresh machine.
SHELL := /bin/bash
CARGO ?= cargo
# Build output; CI points CARGO_TARGET_DIR at a cache outside the clone so warm runs reuse it.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
SHOAL := $(TARGET_DIR)/release/shoal

.PHONY: all build test lint fmt unit demo bench toolchain python-deps python-test protos \
	e2e-deps e2e-build e2e-up e2e-down e2e e2e-control-plane images crds crds-check \
	operator-static skew-bin browser-deps e2e-hub-deps dashboard-vendor dashboard-check monitoring-test \
	wheel wheel-test native
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

lint: toolchain crds-check dashboard-check python-deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(PYTHON) -m ruff check .

# The CRD YAML is generated from the operator's Rust types (one source of truth), into
# crds/ and the chart.
CRD_FILES := crds/shoal.dev.yaml charts/shoal-operator/crds/shoal.dev.yaml
crds: toolchain
	$(CARGO) run --quiet -p shoal-operator -- crds > crds/shoal.dev.yaml
	cp crds/shoal.dev.yaml charts/shoal-operator/crds/shoal.dev.yaml

# Fails when a generated CRD file is stale (run `make crds` and commit).
crds-check: toolchain
	@for f in $(CRD_FILES); do \
		$(CARGO) run --quiet -p shoal-operator -- crds | diff -u $$f - \
			|| { echo "$$f is stale: run 'make crds' and commit it"; exit 1; }; \
	done

# Unit, property and integration tests (real scheduler and worker processes on 127.0.0.1).
unit: toolchain
	$(CARGO) test --workspace

# Python: pinned packages from PyPI and this checkout's shoal package in development mode
# (a few seconds when they are already there).
python-deps: native
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r python/requirements-test.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps -e python

# shoal._native (python/native, pyo3): the Dask hook's order and grouping in Rust, copied into
# the package (the editable install and the wheel take it from there). When it cannot be
# built, a warning says so and the Python path runs (`SHOAL_NATIVE=0` forces that path).
NATIVE_SO := python/shoal/_native.abi3.so
native: toolchain
	@$(CARGO) build --release --quiet -p shoal-native && cp $(TARGET_DIR)/release/lib_native.so $(NATIVE_SO).tmp && mv -f $(NATIVE_SO).tmp $(NATIVE_SO) || \
		{ rm -f $(NATIVE_SO); echo "warning: shoal._native was not built; the Dask hook uses its Python path"; }

# What the browser tests drive: Debian's Chromium (apt, as root) and configurable-http-proxy
# (npm, into a cache keyed by its version); Playwright comes with the Python packages.
CHP_VERSION := 5.3.0
CHP_DIR := $(HOME)/.cache/shoal-tools/chp-$(CHP_VERSION)
CHP := $(CHP_DIR)/node_modules/.bin/configurable-http-proxy
browser-deps:
	@command -v chromium >/dev/null || { \
		[ "$$(id -u)" = 0 ] || { echo "Debian's chromium package is missing: apt-get install chromium (as root)"; exit 1; }; \
		echo "installing Debian's chromium"; export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends chromium >/tmp/shoal-apt-chromium.log 2>&1 || \
		{ apt-get update -q >>/tmp/shoal-apt-chromium.log 2>&1 && \
		  apt-get install -y -q --no-install-recommends chromium >>/tmp/shoal-apt-chromium.log 2>&1; } || \
		{ tail -n 20 /tmp/shoal-apt-chromium.log; exit 1; }; }
	@[ -x $(CHP) ] || { mkdir -p $(CHP_DIR) && npm install --quiet --no-audit --no-fund --prefix $(CHP_DIR) \
		configurable-http-proxy@$(CHP_VERSION) >$(CHP_DIR).log 2>&1 || { tail -n 20 $(CHP_DIR).log; exit 1; }; }

# The dashboard's vendored front-end libraries (uPlot), from the versions pinned in
# runtime/scheduler/dashboard/package-lock.json; `dashboard-check` fails on drift.
DASHBOARD := runtime/scheduler/dashboard
dashboard-vendor:
	cd $(DASHBOARD) && npm ci --quiet --no-audit --no-fund --ignore-scripts
	cp $(DASHBOARD)/node_modules/uplot/dist/uPlot.iife.min.js $(DASHBOARD)/node_modules/uplot/dist/uPlot.min.css $(DASHBOARD)/vendor/
	cp $(DASHBOARD)/node_modules/uplot/LICENSE $(DASHBOARD)/vendor/uPlot.LICENSE

dashboard-check:
	@tmp=$$(mktemp -d) && cp $(DASHBOARD)/package.json $(DASHBOARD)/package-lock.json $$tmp/ && \
	( cd $$tmp && npm ci --quiet --no-audit --no-fund --ignore-scripts >/dev/null ) && \
	for f in uPlot.iife.min.js uPlot.min.css; do \
		cmp -s $$tmp/node_modules/uplot/dist/$$f $(DASHBOARD)/vendor/$$f || \
		{ echo "$(DASHBOARD)/vendor/$$f differs from the pinned npm package: run 'make dashboard-vendor' and commit"; rm -rf $$tmp; exit 1; }; \
	done; rm -rf $$tmp

# Regenerates the Python gRPC stubs from proto/ (commit the result).
protos: python-deps
	$(PYTHON) python/gen_protos.py

# Python client, executors and Dask on a real local cluster (needs the release binary).
python-test: python-deps build browser-deps
	$(PYTHON) python/gen_protos.py --check
	SHOAL_BIN=$(SHOAL) SHOAL_CHP=$(CHP) $(PYTHON) -m pytest -q python/tests
	@echo "== the Dask hook again on its pure-Python path (SHOAL_NATIVE=0) =="
	SHOAL_NATIVE=0 SHOAL_BIN=$(SHOAL) $(PYTHON) -m pytest -q python/tests/test_dask.py python/tests/test_grouping.py

test: lint unit python-test wheel-test e2e-control-plane monitoring-test

# The shoal wheel: this Python package with the `shoal` binary as its script (maturin,
# bindings = "bin"; python/pyproject.toml, python/build_backend.py), into dist/. maturin
# compiles with the release profile in $(TARGET_DIR), so after `make build` it only packs.
MATURIN_VERSION := 1.16.0
WHEEL_DIR := $(CURDIR)/dist
wheel: toolchain native
	@$(PYTHON) -m maturin --version 2>/dev/null | grep -qx "maturin $(MATURIN_VERSION)" || \
		$(PYTHON) -m pip install --quiet --disable-pip-version-check maturin==$(MATURIN_VERSION)
	@rm -f $(WHEEL_DIR)/shoal-*.whl
	cd python && CARGO_TARGET_DIR=$(TARGET_DIR) $(PYTHON) -m maturin build --release --quiet --out $(WHEEL_DIR)

# The wheel in a fresh venv with no Rust toolchain on PATH: a graph on LocalCluster and
# `shoal version` (python/wheel_test.py; its pip cache is in ~/.cache/shoal-tools).
wheel-test: wheel
	$(PYTHON) python/wheel_test.py $(WHEEL_DIR)/shoal-*.whl

# Alert rules (promtool check + unit tests; promtool built once into ~/.cache/shoal-tools)
# and the Grafana dashboard (valid, querying only known metrics), from the chart's files/.
monitoring-test: python-deps
	@PYTHON=$(PYTHON) monitoring/test.sh

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

# --- The Kubernetes test bed (e2e/): built from upstream sources, cached in
# ~/.cache/shoal-e2e (SHOAL_E2E_HOME), logs in its logs/ folder. Needs root.
E2E := e2e/scripts
MODE ?= full

e2e-deps:
	@$(E2E)/deps.sh

# Builds the pinned Kubernetes, etcd, helm and CoreDNS binaries once (MODE=control-plane
# builds only what the control plane needs).
e2e-build: e2e-deps
	@$(E2E)/build.sh $(MODE)

# Starts the test bed; the last line printed is `export KUBECONFIG=<path>`.
# MODE=control-plane: etcd + kube-apiserver + kube-controller-manager on loopback.
# MODE=full (default): plus kube-scheduler, containerd, kubelet, kube-proxy and CoreDNS.
e2e-up: e2e-deps
	@$(E2E)/up.sh $(MODE)

# Stops every test-bed process by PID and removes its mounts, netns, bridge, rules, cgroups.
e2e-down:
	@$(E2E)/down.sh

# The operator as one static binary (musl), for its image.
MUSL := x86_64-unknown-linux-musl
OPERATOR_STATIC := $(TARGET_DIR)/$(MUSL)/static/shoal-operator
operator-static: toolchain e2e-deps
	@rustup target list --installed | grep -qx $(MUSL) || rustup target add $(MUSL)
	$(CARGO) build --profile static --target $(MUSL) -p shoal-operator

# The runtime built to claim another version, for the version-skew test (own target
# folder, so it never displaces the real build).
include e2e/versions.env
SHOAL_SKEW := $(TARGET_DIR)/skew/static/shoal
skew-bin: toolchain
	SHOAL_BUILD_VERSION=$(SHOAL_SKEW_VERSION) CARGO_TARGET_DIR=$(TARGET_DIR)/skew \
		$(CARGO) build --profile static -p shoal

IMAGE_BINS := SHOAL_WHEEL_DIR=$(WHEEL_DIR) SHOAL_OPERATOR_BIN=$(OPERATOR_STATIC) SHOAL_SKEW_BIN=$(SHOAL_SKEW)

# The runtime, operator, skew, notebook and pause images (the runtime and notebook ones
# install the shoal wheel), built without Docker and imported into the test node when it runs.
images: e2e-deps wheel operator-static skew-bin
	@$(IMAGE_BINS) $(E2E)/images.sh all

# End-to-end tests on the full test bed (reuses a running one; stops it if it started it).
# The JupyterHub test's host side: a pinned Hub + KubeSpawner, and CHP (browser-deps).
e2e-hub-deps: python-deps browser-deps
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r e2e/requirements-hub.txt

e2e: e2e-deps wheel operator-static skew-bin python-deps e2e-hub-deps
	@$(IMAGE_BINS) SHOAL_CHP=$(CHP) $(E2E)/e2e.sh full

# The control-plane tier alone (part of `make test`). pytest collects every e2e module, the
# notebook test's too, so the Hub's host packages are installed here as well.
e2e-control-plane: e2e-deps toolchain e2e-hub-deps
	@$(E2E)/e2e.sh control-plane
