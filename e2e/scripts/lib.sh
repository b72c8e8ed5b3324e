# Shared settings for the test-bed scripts; sourced, never run.
# Every path the test bed writes lives under $E2E_HOME (outside the repository):
#   bin/<key>/   built binaries, keyed by versions and go.sum (reused across runs)
#   logs/        build-<binary>.log and <daemon>.log of the last start (kept after e2e-down)
#   run/         the running cluster: pids, certificates, kubeconfigs, data (removed by e2e-down)
set -euo pipefail

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "$E2E_DIR/.." && pwd)"
E2E_HOME="${SHOAL_E2E_HOME:-$HOME/.cache/shoal-e2e}"
RUN_DIR="$E2E_HOME/run"
LOG_DIR="$E2E_HOME/logs"
# shellcheck source=../versions.env
source "$E2E_DIR/versions.env"
# The runtime version (the workspace version): the tag of the images built here.
SHOAL_VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO_DIR/Cargo.toml" | head -1)"

# Network plan: the test node's bridge and the addresses daemons bind to.
NODE_NAME=shoal-e2e-node
BRIDGE=shoale2e0
POD_CIDR=10.213.0.0/24
NODE_IP=10.213.0.1
SERVICE_CIDR=10.214.0.0/24
SERVICE_IP=10.214.0.1
API_PORT=16443
ETCD_PORT=23790
ETCD_PEER_PORT=23800
KCM_PORT=10257
SCHEDULER_PORT=10259
PAUSE_IMAGE=shoal.dev/e2e/pause:1
SKEW_VERSION="$SHOAL_SKEW_VERSION"
CONTAINERD_SOCK="$RUN_DIR/containerd/containerd.sock"
KUBECONFIG_ADMIN="$RUN_DIR/admin.kubeconfig"

log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The cache key: every pinned upstream version, both go.sum files and the Go toolchain.
bin_key() {
  {
    grep -v '^SHOAL_' "$E2E_DIR/versions.env"
    cat "$E2E_DIR"/build/*/go.sum "$E2E_DIR"/build/*/go.mod
    go env GOVERSION
  } | sha256sum | cut -c1-16
}
BIN_DIR="$E2E_HOME/bin/$(bin_key)"

# Print the last lines of every daemon log in a folder (build logs are printed by the
# build that fails), so a red run says which part failed and why.
dump_logs() {
  local dir="$1" f
  for f in "$dir"/*.log; do
    [ -e "$f" ] || continue
    case "$(basename "$f")" in build-* | apt.log) continue ;; esac
    printf '\n===== %s (last 40 lines) =====\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
}
