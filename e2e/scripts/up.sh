#!/usr/bin/env bash
# Starts the test bed. Usage: up.sh control-plane|full
#   control-plane: etcd + kube-apiserver + kube-controller-manager on loopback (TLS,
#                  service-account keys, RBAC, admin kubeconfig). For operator tests.
#   full:          the above bound to the test bridge, plus kube-scheduler, containerd,
#                  a kubelet, kube-proxy and CoreDNS, so pods really run.
# Reuses a healthy cluster of the same mode; replaces one of another mode.
# The LAST line printed is exactly `export KUBECONFIG=<absolute path>`.
# On failure it prints every daemon's log tail and stops what it started.
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/scripts/daemons.sh"
source "$E2E_DIR/scripts/pki.sh"

MODE="${1:-full}"
case "$MODE" in
  control-plane | full) ;;
  *) die "unknown mode '$MODE'; use MODE=control-plane or MODE=full" ;;
esac
[ "$(id -u)" = 0 ] || die "the test bed runs daemons as root (containerd, kubelet); run as root"

if [ -f "$RUN_DIR/mode" ]; then
  if [ "$(cat "$RUN_DIR/mode")" = "$MODE" ] && cluster_healthy; then
    log "reusing the running $MODE test bed"
    echo "export KUBECONFIG=$KUBECONFIG_ADMIN"
    exit 0
  fi
  log "a $(cat "$RUN_DIR/mode") test bed is running or left over; stopping it first"
  "$E2E_DIR/scripts/down.sh"
fi

"$E2E_DIR/scripts/build.sh" "$MODE"
if [ "$MODE" = full ]; then
  "$E2E_DIR/scripts/images.sh" pause
fi

STARTING=
mkdir -p "$RUN_DIR/pids" "$LOG_DIR"
rm -f "$LOG_DIR"/*.log.old
for f in "$LOG_DIR"/*.log; do
  case "$f" in */build-*) ;; *) [ -e "$f" ] && mv "$f" "$f.old" ;; esac
done
echo "$MODE" >"$RUN_DIR/mode"
on_exit() {
  local rc=$?
  [ "$rc" = 0 ] && return
  dump_logs "$LOG_DIR"
  "$E2E_DIR/scripts/down.sh" || true
  log "start-up of the $MODE test bed failed${STARTING:+ at $STARTING (log: $LOG_DIR/$STARTING.log)}; logs are in $LOG_DIR"
  exit "$rc"
}
trap on_exit EXIT

if [ "$MODE" = full ]; then
  API_ADDRESS="$NODE_IP"
  record_host_state
  setup_bridge
else
  API_ADDRESS=127.0.0.1
fi
SERVER="https://$API_ADDRESS:$API_PORT"
PKI="$RUN_DIR/pki"
make_pki "$PKI" "$SERVER"
cp "$PKI/admin.kubeconfig" "$KUBECONFIG_ADMIN"
export KUBECONFIG="$KUBECONFIG_ADMIN"

start_daemon etcd "$BIN_DIR/etcd" \
  --name shoal-e2e --data-dir "$RUN_DIR/etcd" --unsafe-no-fsync \
  --listen-client-urls "https://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "https://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "shoal-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
  --cert-file "$PKI/etcd.crt" --key-file "$PKI/etcd.key" \
  --client-cert-auth --trusted-ca-file "$PKI/ca.crt"
wait_for etcd 60 curl -sf --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/etcd-client.crt" \
  --key "$PKI/etcd-client.key" "https://127.0.0.1:$ETCD_PORT/readyz"

start_daemon kube-apiserver "$BIN_DIR/kube-apiserver" \
  --bind-address "$API_ADDRESS" --advertise-address "$API_ADDRESS" --secure-port "$API_PORT" \
  --cert-dir "$RUN_DIR/apiserver" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --client-ca-file "$PKI/ca.crt" \
  --etcd-servers "https://127.0.0.1:$ETCD_PORT" --etcd-cafile "$PKI/ca.crt" \
  --etcd-certfile "$PKI/etcd-client.crt" --etcd-keyfile "$PKI/etcd-client.key" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --authorization-mode Node,RBAC --allow-privileged=true --profiling=false \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP
wait_for kube-apiserver 120 kctl get --raw /readyz

start_daemon kube-controller-manager "$BIN_DIR/kube-controller-manager" \
  --kubeconfig "$PKI/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig "$PKI/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig "$PKI/kube-controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false \
  --use-service-account-credentials --service-account-private-key-file "$PKI/sa.key" \
  --root-ca-file "$PKI/ca.crt" \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --allocate-node-cidrs=false --profiling=false
wait_for kube-controller-manager 60 curl -skf --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz"
wait_for "default service account" 60 kctl -n default get serviceaccount default

if [ "$MODE" = full ]; then
  start_node
fi

log "the $MODE test bed is up; logs in $LOG_DIR"
echo "export KUBECONFIG=$KUBECONFIG_ADMIN"
