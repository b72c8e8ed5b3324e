#!/usr/bin/env bash
# Runs the end-to-end tests on the test bed. Usage: e2e.sh control-plane|full
# Brings the test bed up in MODE (reusing a healthy running one), runs e2e/tests (the
# control-plane tier selects the tests that need no node, then runs the operator's
# integration tests, operator/tests/control_plane.rs), prints every daemon's log
# tail if a test fails, and stops the test bed if this run started it.
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/scripts/daemons.sh"

MODE="${1:-full}"
started=0
if ! { [ -f "$RUN_DIR/mode" ] && [ "$(cat "$RUN_DIR/mode")" = "$MODE" ] && cluster_healthy; }; then
  started=1
fi
if [ "$MODE" = full ]; then
  "$E2E_DIR/scripts/images.sh" all
  SELECT=()
else
  SELECT=(-m "not node")
fi
"$E2E_DIR/scripts/up.sh" "$MODE" | tail -n 1 >"$E2E_HOME/kubeconfig.env"
source "$E2E_HOME/kubeconfig.env"

export SHOAL_E2E_KUBECTL="$BIN_DIR/kubectl" SHOAL_E2E_HELM="$BIN_DIR/helm" SHOAL_E2E_HOME="$E2E_HOME"
export SHOAL_E2E_RUNTIME_IMAGE="shoal.dev/shoal:$SHOAL_VERSION" SHOAL_E2E_SKEW_VERSION="$SKEW_VERSION" SHOAL_E2E_NODE_IP="$NODE_IP"
rc=0
python3 -m pytest -q -p no:cacheprovider "$E2E_DIR/tests" "${SELECT[@]}" || rc=$?
if [ "$MODE" = control-plane ]; then
  # The operator against the real API server (its tests are #[ignore]d without one).
  # --workspace: the same feature set as `cargo test --workspace`, so nothing rebuilds.
  (cd "$REPO_DIR" && cargo test -q --workspace --test control_plane -- --ignored) || rc=$?
fi
if [ "$rc" != 0 ]; then
  log "end-to-end tests failed ($MODE tier); daemon logs follow"
  dump_logs "$LOG_DIR"
fi
if [ "$started" = 1 ]; then
  "$E2E_DIR/scripts/down.sh"
fi
log "$MODE tier: $([ "$rc" = 0 ] && echo passed || echo FAILED)"
exit "$rc"
