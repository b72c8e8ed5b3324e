#!/usr/bin/env bash
# Checks Shoal's alert rules and Grafana dashboard (`make monitoring-test`, part of `make test`):
# `promtool check rules` and `promtool test rules` (monitoring/rules.test.yaml), then the
# static checks of monitoring/check.py and the tests of its parser. promtool is built once
# from its Go module into $SHOAL_TOOLS_HOME (default ~/.cache/shoal-tools), keyed by version;
# its build log is kept there under logs/.
set -euo pipefail

# The Prometheus Go module's version (v0.3XX.y is Prometheus 3.XX.y).
PROMETHEUS_VERSION=v0.316.0

MON_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$MON_DIR/.." && pwd)"
TOOLS="${SHOAL_TOOLS_HOME:-$HOME/.cache/shoal-tools}"
PROMTOOL="$TOOLS/promtool-$PROMETHEUS_VERSION"
RULES="$REPO_DIR/charts/shoal-operator/files/shoal-rules.yaml"
PYTHON="${PYTHON:-python3}"

log() { printf '[monitoring %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

build_promtool() {
  command -v go >/dev/null || die "go not found: promtool is built from its Go module (install Go; the e2e test bed needs it too)"
  mkdir -p "$TOOLS/logs"
  local build_log="$TOOLS/logs/build-promtool-$PROMETHEUS_VERSION.log" gobin="$TOOLS/.gobin-promtool"
  log "building promtool $PROMETHEUS_VERSION (once; a few minutes); log: $build_log"
  local start=$SECONDS
  rm -rf "$gobin"
  if ! CGO_ENABLED=0 GOFLAGS=-mod=mod GOBIN="$gobin" go install -trimpath \
        -ldflags "-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v}" \
        "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION" >"$build_log" 2>&1; then
    tail -n 30 "$build_log" >&2
    die "building promtool $PROMETHEUS_VERSION failed; full log: $build_log"
  fi
  mv "$gobin/promtool" "$PROMTOOL"
  rmdir "$gobin"
  log "built promtool in $((SECONDS - start)) s"
}

[ -x "$PROMTOOL" ] || build_promtool
"$PROMTOOL" --version | head -n 1
"$PROMTOOL" check rules "$RULES"
"$PROMTOOL" test rules "$MON_DIR/rules.test.yaml"
"$PYTHON" "$MON_DIR/check.py"
"$PYTHON" -m pytest -q -p no:cacheprovider "$MON_DIR"
log "rules and dashboard: passed"
