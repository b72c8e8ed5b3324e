#!/usr/bin/env bash
# Stops the test bed and removes everything it made: processes (by recorded PID), pod
# containers and their shims, mounts, network namespaces, the bridge, firewall rules,
# sysctls and cgroups. Logs in $LOG_DIR are kept. Safe to run when nothing is up.
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/scripts/daemons.sh"
set +e

# stop_daemons NAME...: SIGTERM to each by recorded PID, SIGKILL to any still running
# after 10 s; returns once all have exited.
stop_daemons() {
  local name pidfile pid pids=() i
  for name in "$@"; do
    pidfile="$RUN_DIR/pids/$name.pid"
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null
      pids+=("$pid")
    fi
    echo "$pid" >>"$RUN_DIR/stopped-pids"
    rm -f "$pidfile"
  done
  for i in $(seq 1 100); do
    alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    [ "${#alive[@]}" = 0 ] && return 0
    sleep 0.1
  done
  log "processes ${alive[*]} did not stop in 10 s; killing them"
  kill -KILL "${alive[@]}" 2>/dev/null
  sleep 0.2
}

# delete_pods: let the kubelet tear pods down properly (CNI DEL, unmounts) while it runs.
delete_pods() {
  daemon_alive kubelet && daemon_alive kube-apiserver || return 0
  log "deleting every pod so the kubelet tears them down"
  kctl delete pods --all --all-namespaces --grace-period=1 --wait=false >/dev/null 2>&1
  local i
  for i in $(seq 1 60); do
    [ -z "$(kctl get pods -A -o name 2>/dev/null)" ] && return 0
    sleep 0.5
  done
  log "some pods were still terminating after 30 s; removing their containers directly"
}

# remove_containers: whatever containerd still runs, killed and deleted, then its shims.
remove_containers() {
  [ -S "$CONTAINERD_SOCK" ] || return 0
  local c="ctr --address $CONTAINERD_SOCK -n k8s.io" id
  for id in $($c tasks ls -q 2>/dev/null); do
    $c tasks kill -s SIGKILL "$id" >/dev/null 2>&1
  done
  sleep 0.5
  for id in $($c tasks ls -q 2>/dev/null); do
    $c tasks delete -f "$id" >/dev/null 2>&1
  done
  for id in $($c containers ls -q 2>/dev/null); do
    $c containers delete "$id" >/dev/null 2>&1
  done
}

# kill_shims: shims (and containers) outlive containerd; their PIDs are in its state folder.
kill_shims() {
  local f pid
  for f in $(find "$RUN_DIR/containerd/state" -name init.pid -o -name shim.pid 2>/dev/null); do
    pid="$(cat "$f")"
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && log "killed leftover process $pid ($f)"
  done
}

# unmount_all: every mount below the run folder, deepest first.
unmount_all() {
  local m
  awk '{print $2}' /proc/mounts | grep "^$RUN_DIR/" | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done
}

# remove_netns: namespaces created since start-up (pod sandboxes left behind).
remove_netns() {
  local state="$RUN_DIR/host" ns
  [ -f "$state/netns.before" ] || return 0
  ip netns list | awk '{print $1}' | sort | comm -13 "$state/netns.before" - | while read -r ns; do
    [ -n "$ns" ] || continue
    log "removing network namespace $ns"
    ip netns delete "$ns" 2>/dev/null || { umount -l "/run/netns/$ns"; rm -f "/run/netns/$ns"; }
  done
}

# restore_host: firewall rules, sysctls and cgroups back to what record_host_state saw.
restore_host() {
  local state="$RUN_DIR/host" dir
  [ -d "$state" ] || return 0
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link delete "$BRIDGE"
  fi
  if [ -f "$state/ruleset.nft" ]; then
    nft flush ruleset && nft -f "$state/ruleset.nft"
  fi
  [ -f "$state/sysctl.conf" ] && sysctl -q -p "$state/sysctl.conf" >/dev/null
  if [ -f "$state/cgroups.before" ]; then
    for dir in /sys/fs/cgroup/*/; do
      [ -L "${dir%/}" ] && continue
      find "$dir" -mindepth 1 -maxdepth 1 -type d
    done | sort | comm -13 "$state/cgroups.before" - | while read -r dir; do
      find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || log "could not remove cgroup $dir"
    done
  fi
  find /var/log/containers -maxdepth 1 -type l -lname "$RUN_DIR/*" -delete 2>/dev/null
  if [ -f "$state/dirs.created" ]; then
    while read -r dir; do
      grep -q " $dir[/ ]" /proc/mounts && { log "not removing $dir: something is mounted in it"; continue; }
      rm -rf "$dir"
    done <"$state/dirs.created"
  fi
}

# verify_clean: fail, naming each leftover, if a process, mount, netns, bridge or
# folder of the test bed survived the teardown.
verify_clean() {
  local state="$RUN_DIR/host" leftovers=() pid dir
  for pid in $(cat "$RUN_DIR/stopped-pids" 2>/dev/null); do
    kill -0 "$pid" 2>/dev/null && leftovers+=("process $pid")
  done
  while read -r dir; do leftovers+=("mount $dir"); done < <(awk '{print $2}' /proc/mounts | grep "^$RUN_DIR/")
  ip link show "$BRIDGE" >/dev/null 2>&1 && leftovers+=("bridge $BRIDGE")
  if [ -f "$state/netns.before" ]; then
    while read -r dir; do
      [ -n "$dir" ] && leftovers+=("netns $dir")
    done < <(ip netns list | awk '{print $1}' | sort | comm -13 "$state/netns.before" -)
  fi
  if [ -f "$state/dirs.created" ]; then
    while read -r dir; do [ -e "$dir" ] && leftovers+=("folder $dir"); done <"$state/dirs.created"
  fi
  if [ "${#leftovers[@]}" != 0 ]; then
    log "teardown left behind: ${leftovers[*]}"
    return 1
  fi
}

[ -d "$RUN_DIR" ] || { log "nothing to stop"; exit 0; }
delete_pods
stop_daemons coredns kube-proxy kubelet kube-scheduler
remove_containers
stop_daemons containerd
kill_shims
stop_daemons kube-controller-manager kube-apiserver
stop_daemons etcd
for f in "$RUN_DIR"/pids/*.pid; do [ -e "$f" ] && stop_daemons "$(basename "$f" .pid)"; done
unmount_all
remove_netns
restore_host
verify_clean || exit 1
rm -rf "$RUN_DIR"
log "test bed stopped; no process, mount, network namespace, bridge or folder left behind"
