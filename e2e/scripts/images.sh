#!/usr/bin/env bash
# Builds container images with no Docker engine and no registry, as docker-archive
# tarballs in $E2E_HOME/images/, and imports them into the test node's containerd when
# one runs. Usage: images.sh [pause|runtime|all]
#   pause:   the pod sandbox image ($PAUSE_IMAGE), one static C program
#   runtime: shoal.dev/shoal:<version>: Debian (debootstrap) + Python with the shoal
#            package, numpy, pandas, dask + the `shoal` binary; runs as uid 10001
# The Debian + Python part is cached, keyed by the suite and the pinned requirements.
# The same images are described by Dockerfiles in e2e/images/ for users with Docker.
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/scripts/daemons.sh"

WHAT="${1:-all}"
IMAGES="$E2E_HOME/images"
CACHE="$E2E_HOME/cache"
OPERATOR_IMAGE="shoal.dev/shoal-operator:$SHOAL_VERSION"
DEBIAN_SUITE=bookworm
mkdir -p "$IMAGES" "$CACHE" "$LOG_DIR"

need() {
  command -v "$1" >/dev/null || die "$1 is missing; run 'make e2e-deps' (installs the Debian packages the test bed needs)"
}
need umoci
need skopeo

# pack LAYOUT TAG REF ARCHIVE: name the image REF and write it as a docker archive.
pack() {
  local layout="$1" tag="$2" ref="$3" archive="$4"
  rm -f "$archive.tmp"
  skopeo copy --quiet "oci:$layout:$tag" "docker-archive:$archive.tmp:$ref"
  mv "$archive.tmp" "$archive"
  log "image $ref written to $archive"
}

build_pause() {
  local work="$CACHE/pause-work" key
  key="$(sha256sum "$E2E_DIR/images/pause/pause.c" "$0" | sha256sum | cut -c1-16)"
  if [ -f "$IMAGES/pause.tar" ] && [ "$(cat "$IMAGES/pause.key" 2>/dev/null)" = "$key" ]; then
    return
  fi
  rm -rf "$work" && mkdir -p "$work"
  gcc -static -Os -Wall -Wextra -Werror -o "$work/pause" "$E2E_DIR/images/pause/pause.c"
  strip "$work/pause"
  umoci init --layout "$work/oci"
  umoci new --image "$work/oci:pause"
  umoci unpack --image "$work/oci:pause" "$work/bundle" >/dev/null
  install -m 0755 "$work/pause" "$work/bundle/rootfs/pause"
  umoci repack --image "$work/oci:pause" "$work/bundle"
  umoci config --image "$work/oci:pause" --config.entrypoint /pause --config.user 65535:65535
  pack "$work/oci" pause "$PAUSE_IMAGE" "$IMAGES/pause.tar"
  echo "$key" >"$IMAGES/pause.key"
  rm -rf "$work"
}

# The Debian mirror apt on this machine already uses (override with DEBIAN_MIRROR).
debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then
    echo "$DEBIAN_MIRROR"
    return
  fi
  grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' |
    grep -v security | grep -E '/debian/?$' | head -1 ||
    true
}

# The Python packages the image carries: the runtime pins from requirements-test.txt.
image_requirements() {
  grep -E '^[a-zA-Z]' "$REPO_DIR/python/requirements-test.txt" |
    grep -v -E '^(grpcio-tools|pytest|distributed|ruff)=='
}

# runtime_base: an OCI layout with Debian + Python + pinned packages (cached).
runtime_base() {
  local key layout mirror work
  key="$({ echo "$DEBIAN_SUITE"; image_requirements; } | sha256sum | cut -c1-16)"
  layout="$CACHE/runtime-base-$key"
  if [ -f "$layout/index.json" ]; then
    echo "$layout"
    return
  fi
  mirror="$(debian_mirror)"
  [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list.d; set DEBIAN_MIRROR"
  need debootstrap
  work="$CACHE/runtime-base-work"
  rm -rf "$work" && mkdir -p "$work"
  umoci init --layout "$work/oci"
  umoci new --image "$work/oci:base"
  umoci unpack --image "$work/oci:base" "$work/bundle" >/dev/null
  log "debootstrap $DEBIAN_SUITE with Python; log: $LOG_DIR/build-image-debootstrap.log"
  debootstrap --variant=minbase --include=python3,ca-certificates,tini \
    "$DEBIAN_SUITE" "$work/bundle/rootfs" "$mirror" >"$LOG_DIR/build-image-debootstrap.log" 2>&1 ||
    { tail -n 40 "$LOG_DIR/build-image-debootstrap.log" >&2; die "debootstrap failed"; }
  rm -rf "$work/bundle/rootfs/var/cache/apt/archives/"*.deb "$work/bundle/rootfs/var/lib/apt/lists/"*
  log "installing the image's Python packages; log: $LOG_DIR/build-image-pip.log"
  # Debian's python3 is 3.11 like the machine's, so the machine's pip picks matching wheels.
  image_requirements >"$work/requirements.txt"
  python3 -m pip install --quiet --no-compile --target "$work/bundle/rootfs/usr/local/lib/python3.11/dist-packages" \
    -r "$work/requirements.txt" >"$LOG_DIR/build-image-pip.log" 2>&1 ||
    { tail -n 40 "$LOG_DIR/build-image-pip.log" >&2; die "pip install into the image failed"; }
  umoci repack --image "$work/oci:base" "$work/bundle"
  rm -rf "$work/bundle"
  mv "$work/oci" "$layout"
  rm -rf "$work"
  echo "$layout"
}

# runtime_key BASE BINARY: what a runtime image is built from; unchanged inputs reuse it.
runtime_key() {
  {
    echo "$1"
    sha256sum "$2" "$0" "$REPO_DIR/python/pyproject.toml"
    find "$REPO_DIR/python/shoal" -name '*.py' -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
}

# build_runtime_image BINARY VERSION NAME: shoal.dev/shoal:VERSION from the cached base,
# the given `shoal` binary and this checkout's Python package, into $IMAGES/NAME.tar.
build_runtime_image() {
  local shoal_bin="$1" version="$2" name="$3" base work key ref="shoal.dev/shoal:$2"
  [ -x "$shoal_bin" ] || die "no shoal binary at '$shoal_bin'; run 'make images'"
  base="$(runtime_base)"
  key="$(runtime_key "$base" "$shoal_bin")"
  if [ -f "$IMAGES/$name.tar" ] && [ "$(cat "$IMAGES/$name.key" 2>/dev/null)" = "$key" ]; then
    log "image $ref is up to date ($IMAGES/$name.tar)"
    return
  fi
  work="$CACHE/$name-work"
  rm -rf "$work" && mkdir -p "$work"
  cp -a "$base" "$work/oci"
  umoci unpack --image "$work/oci:base" "$work/bundle" >/dev/null
  local rootfs="$work/bundle/rootfs"
  install -m 0755 "$shoal_bin" "$rootfs/usr/local/bin/shoal"
  # Build from a copy: setuptools writes build/ next to the sources it is given.
  mkdir -p "$work/python-src"
  cp -r "$REPO_DIR/python/pyproject.toml" "$REPO_DIR/python/shoal" "$work/python-src/"
  python3 -m pip install --quiet --no-deps --no-compile \
    --target "$rootfs/usr/local/lib/python3.11/dist-packages" "$work/python-src" \
    >"$LOG_DIR/build-image-shoal-python.log" 2>&1 ||
    { tail -n 40 "$LOG_DIR/build-image-shoal-python.log" >&2; die "installing the shoal package failed"; }
  echo "shoal:x:10001:10001:shoal:/home/shoal:/usr/sbin/nologin" >>"$rootfs/etc/passwd"
  echo "shoal:x:10001:" >>"$rootfs/etc/group"
  install -d -o 10001 -g 10001 "$rootfs/home/shoal"
  umoci repack --image "$work/oci:base" "$work/bundle"
  umoci config --image "$work/oci:base" --tag runtime \
    --config.user 10001:10001 --config.workingdir /home/shoal \
    --config.env PYTHONUNBUFFERED=1 --config.env SHOAL_PYTHON=python3 \
    --config.entrypoint /usr/bin/tini --config.entrypoint -- \
    --config.cmd shoal --config.cmd version \
    --config.label "org.opencontainers.image.version=$version"
  pack "$work/oci" runtime "$ref" "$IMAGES/$name.tar"
  echo "$key" >"$IMAGES/$name.key"
  rm -rf "$work"
}

build_runtime() {
  build_runtime_image "${SHOAL_BIN:-}" "$SHOAL_VERSION" runtime
}

# The version-skew image: the same runtime built to claim $SKEW_VERSION, so the e2e tests
# can start a worker of "another version" and watch the scheduler refuse it.
build_skew() {
  build_runtime_image "${SHOAL_SKEW_BIN:-}" "$SKEW_VERSION" runtime-skew
}

build_operator() {
  local bin="${SHOAL_OPERATOR_BIN:-}" work="$CACHE/operator-work" key
  [ -x "$bin" ] || die "SHOAL_OPERATOR_BIN must name the static shoal-operator binary; run 'make images'"
  key="$(sha256sum "$bin" "$0" | sha256sum | cut -c1-16)"
  if [ -f "$IMAGES/operator.tar" ] && [ "$(cat "$IMAGES/operator.key" 2>/dev/null)" = "$key" ]; then
    log "image $OPERATOR_IMAGE is up to date ($IMAGES/operator.tar)"
    return
  fi
  rm -rf "$work" && mkdir -p "$work"
  umoci init --layout "$work/oci"
  umoci new --image "$work/oci:operator"
  umoci unpack --image "$work/oci:operator" "$work/bundle" >/dev/null
  install -m 0755 "$bin" "$work/bundle/rootfs/shoal-operator"
  install -d "$work/bundle/rootfs/etc" "$work/bundle/rootfs/tmp"
  echo "nonroot:x:65532:65532:nonroot:/:/sbin/nologin" >"$work/bundle/rootfs/etc/passwd"
  echo "nonroot:x:65532:" >"$work/bundle/rootfs/etc/group"
  umoci repack --image "$work/oci:operator" "$work/bundle"
  umoci config --image "$work/oci:operator" --config.user 65532:65532 \
    --config.entrypoint /shoal-operator --config.cmd run \
    --config.label "org.opencontainers.image.version=$SHOAL_VERSION"
  pack "$work/oci" operator "$OPERATOR_IMAGE" "$IMAGES/operator.tar"
  echo "$key" >"$IMAGES/operator.key"
  rm -rf "$work"
}

case "$WHAT" in
  pause) build_pause ;;
  runtime) build_runtime ;;
  operator) build_operator ;;
  skew) build_skew ;;
  all) build_pause && build_runtime && build_operator && build_skew ;;
  *) die "unknown image '$WHAT'; use pause, runtime, operator, skew or all" ;;
esac

if [ "$WHAT" != pause ] && [ -S "$CONTAINERD_SOCK" ]; then
  import_images
fi
