#!/usr/bin/env bash
# Installs the Debian packages the test bed uses, only when one is missing:
# containerd, runc, CNI plugins, umoci + skopeo (images without Docker), debootstrap,
# iptables/nftables/conntrack (kube-proxy and teardown), curl, openssl, and musl-tools
# (the operator's static binary).
source "$(dirname "$0")/lib.sh"

declare -A PACKAGE_OF=(
  [containerd]=containerd [runc]=runc [/usr/lib/cni/bridge]=containernetworking-plugins
  [umoci]=umoci [skopeo]=skopeo [debootstrap]=debootstrap [iptables]=iptables
  [nft]=nftables [conntrack]=conntrack [curl]=curl [openssl]=openssl [ss]=iproute2
  [musl-gcc]=musl-tools
)
missing=()
for cmd in "${!PACKAGE_OF[@]}"; do
  if [ "${cmd:0:1}" = / ]; then
    [ -e "$cmd" ] || missing+=("${PACKAGE_OF[$cmd]}")
  else
    command -v "$cmd" >/dev/null || missing+=("${PACKAGE_OF[$cmd]}")
  fi
done
command -v go >/dev/null || die "Go is needed to build Kubernetes; install Go 1.24 or newer"
command -v gcc >/dev/null || die "gcc is needed to build the pause image; apt-get install gcc libc6-dev"
[ "${#missing[@]}" = 0 ] && exit 0
mkdir -p "$LOG_DIR"
[ "$(id -u)" = 0 ] || die "missing Debian packages (${missing[*]}); install them as root"
log "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${missing[@]}" >"$LOG_DIR/apt.log" 2>&1 ||
  { apt-get update -q >>"$LOG_DIR/apt.log" 2>&1 &&
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$LOG_DIR/apt.log" 2>&1; } ||
  { tail -n 30 "$LOG_DIR/apt.log" >&2; die "apt-get install failed; see $LOG_DIR/apt.log"; }
