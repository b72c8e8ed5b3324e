#!/usr/bin/env bash
# Builds the pinned test-bed binaries once into $E2E_HOME/bin/<key>/ and reuses them.
# Usage: build.sh control-plane|full
# control-plane: etcd, kube-apiserver, kube-controller-manager, kubectl, helm
# full:          the above plus kube-scheduler, kubelet, kube-proxy, coredns
source "$(dirname "$0")/lib.sh"

MODE="${1:-full}"
BUILD_LOGS="$LOG_DIR"
mkdir -p "$BIN_DIR" "$BUILD_LOGS"

K8S_PKG=k8s.io/component-base/version
K8S_V="${KUBERNETES_VERSION#v}"
K8S_LDFLAGS="-s -w \
 -X $K8S_PKG.gitVersion=$KUBERNETES_VERSION -X $K8S_PKG.gitMajor=${K8S_V%%.*} \
 -X $K8S_PKG.gitMinor=$(echo "$K8S_V" | cut -d. -f2) -X $K8S_PKG.gitTreeState=clean \
 -X $K8S_PKG.buildDate=1970-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"

# build NAME MODULE_DIR PACKAGE [LDFLAGS]: go build into the cache unless already there.
build() {
  local name="$1" module="$2" pkg="$3" ldflags="${4:--s -w}"
  if [ -x "$BIN_DIR/$name" ]; then
    return 0
  fi
  log "building $name ($pkg); log: $BUILD_LOGS/build-$name.log"
  local start=$SECONDS
  if ! (cd "$module" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" \
          -o "$BIN_DIR/$name.tmp" "$pkg") >"$BUILD_LOGS/build-$name.log" 2>&1; then
    tail -n 40 "$BUILD_LOGS/build-$name.log" >&2
    die "building $name failed; full log: $BUILD_LOGS/build-$name.log"
  fi
  mv "$BIN_DIR/$name.tmp" "$BIN_DIR/$name"
  log "built $name in $((SECONDS - start)) s"
}

# go install for modules without replace directives, into a scratch GOBIN.
install_tool() {
  local name="$1" pkg="$2"
  if [ -x "$BIN_DIR/$name" ]; then
    return 0
  fi
  log "building $name ($pkg); log: $BUILD_LOGS/build-$name.log"
  local start=$SECONDS gobin="$BIN_DIR/.gobin-$name"
  if ! CGO_ENABLED=0 GOBIN="$gobin" go install -trimpath -ldflags "-s -w" "$pkg" \
          >"$BUILD_LOGS/build-$name.log" 2>&1; then
    tail -n 40 "$BUILD_LOGS/build-$name.log" >&2
    die "building $name failed; full log: $BUILD_LOGS/build-$name.log"
  fi
  mv "$gobin/$name" "$BIN_DIR/$name"
  rmdir "$gobin"
  log "built $name in $((SECONDS - start)) s"
}

K8S_MOD="$E2E_DIR/build/kubernetes"
build etcd "$E2E_DIR/build/etcd" go.etcd.io/etcd/server/v3 \
  "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
for cmd in kube-apiserver kube-controller-manager kubectl; do
  build "$cmd" "$K8S_MOD" "k8s.io/kubernetes/cmd/$cmd" "$K8S_LDFLAGS"
done
install_tool helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
if [ "$MODE" = full ]; then
  for cmd in kube-scheduler kubelet kube-proxy; do
    build "$cmd" "$K8S_MOD" "k8s.io/kubernetes/cmd/$cmd" "$K8S_LDFLAGS"
  done
  install_tool coredns "github.com/coredns/coredns@$COREDNS_VERSION"
fi
log "binaries ready in $BIN_DIR"
