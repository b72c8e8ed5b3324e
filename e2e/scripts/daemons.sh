# Starting, checking and configuring the test-bed daemons (sourced by up.sh and down.sh).
# Every daemon runs in its own session with its PID in $RUN_DIR/pids/<name>.pid and its
# output in $LOG_DIR/<name>.log; down.sh stops them by those PIDs.

kctl() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# start_daemon NAME COMMAND...: start COMMAND in the background, logging to NAME.log.
start_daemon() {
  local name="$1"
  shift
  log "starting $name"
  STARTING="$name"
  setsid "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/pids/$name.pid"
}

# daemon_alive NAME: true while NAME's recorded process runs.
daemon_alive() {
  local pidfile="$RUN_DIR/pids/$1.pid"
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# wait_for WHAT SECONDS COMMAND...: retry COMMAND until it succeeds, failing with the
# name of what did not come up (and whether its daemon died) after SECONDS.
wait_for() {
  local what="$1" timeout="$2" start=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ -f "$RUN_DIR/pids/$what.pid" ] && ! daemon_alive "$what"; then
      die "$what exited during start-up; see $LOG_DIR/$what.log"
    fi
    if [ $((SECONDS - start)) -ge "$timeout" ]; then
      die "$what was not ready after ${timeout}s (check: $*); see $LOG_DIR"
    fi
    sleep 0.5
  done
  log "$what is ready ($((SECONDS - start)) s)"
}

# cluster_healthy: every recorded daemon runs and the API server is ready.
cluster_healthy() {
  local pidfile
  for pidfile in "$RUN_DIR"/pids/*.pid; do
    [ -e "$pidfile" ] || return 1
    daemon_alive "$(basename "$pidfile" .pid)" || return 1
  done
  kctl get --raw /readyz >/dev/null 2>&1
}

# The host settings the full node changes; down.sh puts them back.
SYSCTLS="net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables"
# Folders containerd, the CNI plugins and the kubelet create at fixed paths; down.sh
# removes those that did not exist before start-up.
FIXED_DIRS="/run/containerd /run/netns /var/lib/cni /var/lib/kubelet /var/log/containers /var/log/pods"

# record_host_state: what down.sh must restore or remove (firewall, sysctls, netns, cgroups).
record_host_state() {
  local state="$RUN_DIR/host" s c
  mkdir -p "$state"
  modprobe br_netfilter 2>/dev/null || true
  nft list ruleset >"$state/ruleset.nft"
  for s in $SYSCTLS; do
    echo "$s=$(sysctl -n "$s")" >>"$state/sysctl.conf"
  done
  ip netns list | awk '{print $1}' | sort >"$state/netns.before"
  for s in $FIXED_DIRS; do
    [ -e "$s" ] || echo "$s"
  done >"$state/dirs.created"
  for c in /sys/fs/cgroup/*/; do
    [ -L "${c%/}" ] && continue
    find "$c" -mindepth 1 -maxdepth 1 -type d | sort
  done >"$state/cgroups.before"
}

# setup_bridge: the node's bridge, with the node address the API server binds to.
setup_bridge() {
  # A bridge of this name left by a run that was killed before its teardown is ours.
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    log "removing the bridge $BRIDGE left by an earlier run"
    ip link delete "$BRIDGE"
  fi
  ip link add "$BRIDGE" type bridge
  ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  sysctl -qw net.bridge.bridge-nf-call-iptables=1
}

write_containerd_config() {
  local dir="$RUN_DIR/containerd"
  mkdir -p "$dir" "$RUN_DIR/cni/net.d"
  cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
oom_score = 0
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Root here lacks CAP_SYS_RESOURCE; without this every sandbox fails in runc.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN_DIR/cni/net.d"
EOF
  cat >"$RUN_DIR/cni/net.d/10-shoal-e2e.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "shoal-e2e",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$RUN_DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

write_kubelet_config() {
  local pki="$RUN_DIR/pki"
  mkdir -p "$RUN_DIR/kubelet"
  cat >"$RUN_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $pki/kubelet.crt
tlsPrivateKeyFile: $pki/kubelet.key
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
resolvConf: $RUN_DIR/resolv.conf
podLogsDir: $RUN_DIR/pod-logs
failSwapOn: false
oomScoreAdj: 0
serializeImagePulls: false
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2%}
imageGCHighThresholdPercent: 100
EOF
  echo "nameserver $NODE_IP" >"$RUN_DIR/resolv.conf"
}

write_corefile() {
  cat >"$RUN_DIR/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $RUN_DIR/pki/coredns.kubeconfig
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
}

# The identity CoreDNS reads Services and EndpointSlices with.
COREDNS_RBAC='
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "shoal-e2e:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "shoal-e2e:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "shoal-e2e:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:shoal-e2e:coredns"}
'

# start_node: scheduler, containerd (with the built images), kubelet, kube-proxy, CoreDNS.
start_node() {
  local pki="$RUN_DIR/pki"
  start_daemon kube-scheduler "$BIN_DIR/kube-scheduler" \
    --kubeconfig "$pki/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$pki/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$pki/kube-scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false
  wait_for kube-scheduler 60 curl -skf --max-time 2 "https://127.0.0.1:$SCHEDULER_PORT/healthz"

  write_containerd_config
  start_daemon containerd containerd --config "$RUN_DIR/containerd/config.toml"
  wait_for containerd 60 ctr --address "$CONTAINERD_SOCK" version
  import_images

  write_kubelet_config
  start_daemon kubelet "$BIN_DIR/kubelet" \
    --config "$RUN_DIR/kubelet.yaml" --kubeconfig "$pki/kubelet-client.kubeconfig" \
    --root-dir "$RUN_DIR/kubelet" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"
  wait_for kubelet 120 kctl wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s

  start_daemon kube-proxy "$BIN_DIR/kube-proxy" \
    --kubeconfig "$pki/kube-proxy.kubeconfig" --hostname-override "$NODE_NAME" \
    --proxy-mode iptables --cluster-cidr "$POD_CIDR" --conntrack-max-per-core 0 \
    --bind-address "$NODE_IP" --healthz-bind-address 127.0.0.1:10256 \
    --metrics-bind-address 127.0.0.1:10249
  wait_for kube-proxy 60 curl -sf --max-time 2 http://127.0.0.1:10256/healthz

  echo "$COREDNS_RBAC" | kctl apply -f - >/dev/null
  write_corefile
  start_daemon coredns "$BIN_DIR/coredns" -conf "$RUN_DIR/Corefile"
  wait_for coredns 60 curl -sf --max-time 2 http://127.0.0.1:18181/ready
}

# import_images: load every image archive built by images.sh (pause, runtime, operator,
# skew, notebook) into the node's containerd, and name each image by digest too
# (`repo@sha256:...`), as a registry pull would: the kubelet then reports that digest and
# pods may start from it. An archive whose build key (NAME.key) was already imported into
# this containerd, and whose image is still there, is skipped (the notebook image is large).
import_images() {
  local archive ctr_k8s="ctr --address $CONTAINERD_SOCK -n k8s.io" ref digest key stamp out
  local stamps="$RUN_DIR/containerd/imported"
  mkdir -p "$stamps"
  for archive in "$E2E_HOME"/images/*.tar; do
    [ -e "$archive" ] || continue
    key="$(cat "${archive%.tar}.key" 2>/dev/null || true)"
    stamp="$stamps/$(basename "$archive" .tar)"
    if [ -n "$key" ] && [ -f "$stamp" ] && [ "$(head -n 1 "$stamp")" = "$key" ] &&
      [ -n "$($ctr_k8s images ls -q "name==$(sed -n 2p "$stamp")")" ]; then
      continue
    fi
    log "importing $(basename "$archive") into the node's containerd"
    out="$($ctr_k8s images import "$archive")"
    ref="$(echo "$out" | sed -n 's/^unpacking \([^ ]*\) (sha256:.*/\1/p' | head -n 1)"
    if [ -n "$key" ] && [ -n "$ref" ]; then
      printf '%s\n%s\n' "$key" "$ref" >"$stamp"
    fi
  done
  $ctr_k8s images ls | awk 'NR > 1 && $1 ~ /^shoal\.dev\/.*:[^\/]+$/ && $1 !~ /@/ {print $1, $3}' |
    while read -r ref digest; do
      $ctr_k8s images tag --force "$ref" "${ref%:*}@$digest" >/dev/null
    done
}
