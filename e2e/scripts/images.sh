#!/usr/bin/env bash
# Builds container images with no Docker engine and no registry, as docker-archive
# tarballs in $E2E_HOME/images/, and imports them into the test node's containerd when
# one runs. Usage: images.sh [pause|runtime|operator|skew|notebook|all]
#   pause:    the pod sandbox image ($PAUSE_IMAGE), one static C program
#   runtime:  shoal.dev/shoal:<version>: Debian (debootstrap) + Python with numpy, pandas,
#             dask, kr8s + the shoal wheel (`make wheel`: the package and its `shoal`
#             binary); runs as uid 10001
#   operator: shoal.dev/shoal-operator:<version>, the static operator binary alone
#   skew:     the runtime image with a binary claiming $SKEW_VERSION (version-skew tests)
#   notebook: shoal.dev/shoal-notebook:<version>: the runtime base + the single-user
#             Jupyter server (python/requirements-notebook.txt) + the same wheel; runs
#             `jupyterhub-singleuser` as uid 1000 (jovyan)
# The Debian + Python parts are cached, keyed by the suite, the pinned requirements and the
# recipe. The wheel is $SHOAL_WHEEL, else the one `make wheel` wrote to $SHOAL_WHEEL_DIR
# (default dist/).
# The same images are described by Dockerfiles in e2e/images/ for users with Docker.
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/scripts/daemons.sh"

WHAT="${1:-all}"
IMAGES="$E2E_HOME/images"
CACHE="$E2E_HOME/cache"
OPERATOR_IMAGE="shoal.dev/shoal-operator:$SHOAL_VERSION"
NOTEBOOK_IMAGE="shoal.dev/shoal-notebook:$SHOAL_VERSION"
# Where Debian's python3 (3.11, like this machine's) finds packages installed by pip.
SITE=usr/local/lib/python3.11/dist-packages
DEBIAN_SUITE=bookworm
mkdir -p "$IMAGES" "$CACHE" "$LOG_DIR"
# One build at a time (the test bed and its caches are shared, and builds reuse work folders).
exec 9>"$E2E_HOME/images.lock"
flock -n 9 || { log "waiting for another images.sh run to finish"; flock 9; }

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
    grep -v -E '^(grpcio-tools|pytest|distributed|ruff|playwright)=='
}

# The shoal wheel to install: $SHOAL_WHEEL, else the one for this version in
# $SHOAL_WHEEL_DIR (default dist/, where `make wheel` writes it).
shoal_wheel() {
  if [ -n "${SHOAL_WHEEL:-}" ]; then
    [ -f "$SHOAL_WHEEL" ] || die "SHOAL_WHEEL=$SHOAL_WHEEL is not a file; run 'make wheel'"
    echo "$SHOAL_WHEEL"
    return
  fi
  local found=("${SHOAL_WHEEL_DIR:-$REPO_DIR/dist}/shoal-$SHOAL_VERSION-"*.whl)
  [ "${#found[@]}" = 1 ] && [ -f "${found[0]}" ] ||
    die "want one shoal $SHOAL_VERSION wheel in ${SHOAL_WHEEL_DIR:-$REPO_DIR/dist}, found: ${found[*]}; run 'make wheel'"
  echo "${found[0]}"
}

# pip_into_rootfs ROOTFS PIP_ARGS...: installs with this machine's pip (Debian's python3 is
# 3.11 like the machine's, so pip picks matching wheels) where the image's own pip would:
# packages into $SITE, scripts into /usr/local/bin with their #! line naming
# /usr/bin/python3 (pip wrote this machine's python there), data files (etc/, share/: Jupyter
# config and kernel specs) under /usr/local. Entries already in $SITE are left alone: callers
# pin their versions as constraints, so they are the same files.
pip_into_rootfs() {
  local rootfs="$1" stage entry script
  shift
  stage="$(mktemp -d "$CACHE/pip-stage.XXXXXX")"
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --target "$stage" "$@" ||
    { rm -rf "$stage"; return 1; }
  mkdir -p "$rootfs/$SITE" "$rootfs/usr/local/bin"
  if [ -d "$stage/bin" ]; then
    for script in "$stage/bin"/*; do
      if head -n 1 "$script" | grep -qE '^#!.*python'; then
        sed -i '1s|^#!.*$|#!/usr/bin/python3|' "$script"
      fi
      install -m 0755 "$script" "$rootfs/usr/local/bin/"
    done
    rm -rf "$stage/bin"
  fi
  for entry in etc share; do
    if [ -d "$stage/$entry" ]; then
      mkdir -p "$rootfs/usr/local/$entry"
      cp -a "$stage/$entry/." "$rootfs/usr/local/$entry/"
      rm -rf "${stage:?}/$entry"
    fi
  done
  for entry in "$stage"/* "$stage"/.[!.]*; do
    [ -e "$entry" ] || continue
    [ -e "$rootfs/$SITE/$(basename "$entry")" ] || cp -a "$entry" "$rootfs/$SITE/"
  done
  rm -rf "$stage"
}

# installed_pins ROOTFS: name==version of every distribution in the image's $SITE.
installed_pins() {
  local info name
  for info in "$1/$SITE"/*.dist-info; do
    [ -d "$info" ] || continue
    name="$(basename "$info" .dist-info)"
    echo "${name%%-*}==${name#*-}"
  done
}

# runtime_base: an OCI layout with Debian + Python + pinned packages (cached).
runtime_base() {
  local key layout mirror work
  key="$({ echo "$DEBIAN_SUITE"; image_requirements; declare -f pip_into_rootfs; } | sha256sum | cut -c1-16)"
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
  image_requirements >"$work/requirements.txt"
  pip_into_rootfs "$work/bundle/rootfs" --no-compile -r "$work/requirements.txt" >"$LOG_DIR/build-image-pip.log" 2>&1 ||
    { tail -n 40 "$LOG_DIR/build-image-pip.log" >&2; die "pip install into the image failed"; }
  umoci repack --image "$work/oci:base" "$work/bundle"
  rm -rf "$work/bundle"
  mv "$work/oci" "$layout"
  rm -rf "$work"
  echo "$layout"
}

# image_key BASE WHEEL [BINARY]: what a runtime or notebook image is built from (the wheel
# carries the package and the binary; BINARY replaces that binary in the skew image);
# unchanged inputs reuse the image.
image_key() {
  {
    echo "$1"
    shift
    sha256sum "$@" "$0"
  } | sha256sum | cut -c1-16
}

# build_runtime_image WHEEL VERSION NAME [BINARY]: shoal.dev/shoal:VERSION from the cached
# base and the shoal wheel (package + `shoal` in /usr/local/bin), into $IMAGES/NAME.tar.
# BINARY, when given, replaces the wheel's `shoal` (the skew image's other version).
build_runtime_image() {
  local wheel="$1" version="$2" name="$3" override="${4:-}" base work key ref="shoal.dev/shoal:$2"
  if [ -n "$override" ]; then
    [ -x "$override" ] || die "no shoal binary at '$override'; run 'make images'"
  fi
  base="$(runtime_base)"
  key="$(image_key "$base" "$wheel" ${override:+"$override"})"
  if [ -f "$IMAGES/$name.tar" ] && [ "$(cat "$IMAGES/$name.key" 2>/dev/null)" = "$key" ]; then
    log "image $ref is up to date ($IMAGES/$name.tar)"
    return
  fi
  work="$CACHE/$name-work"
  rm -rf "$work" && mkdir -p "$work"
  cp -a "$base" "$work/oci"
  umoci unpack --image "$work/oci:base" "$work/bundle" >/dev/null
  local rootfs="$work/bundle/rootfs"
  install_wheel "$rootfs" "$wheel" "$name"
  if [ -n "$override" ]; then
    install -m 0755 "$override" "$rootfs/usr/local/bin/shoal"
  fi
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

# install_wheel ROOTFS WHEEL NAME: the shoal wheel into the image (no dependencies: the base
# has them), then checks that the image's python finds the wheel's binary, /usr/local/bin/shoal.
install_wheel() {
  local rootfs="$1" wheel="$2" name="$3" found
  pip_into_rootfs "$rootfs" --no-deps --no-compile "$wheel" >"$LOG_DIR/build-image-$name-wheel.log" 2>&1 ||
    { tail -n 40 "$LOG_DIR/build-image-$name-wheel.log" >&2; die "installing $wheel into the $name image failed"; }
  found="$(chroot "$rootfs" /usr/bin/python3 -c 'from shoal.cluster import find_binary; print(find_binary())')" ||
    die "the $name image's python cannot import shoal from $wheel"
  [ "$found" = /usr/local/bin/shoal ] || die "the $name image's find_binary() gave '$found', not the wheel's /usr/local/bin/shoal"
}

build_runtime() {
  build_runtime_image "$(shoal_wheel)" "$SHOAL_VERSION" runtime
}

# The version-skew image: the same wheel with the runtime binary built to claim
# $SKEW_VERSION (`make skew-bin`) in place of the wheel's, so the e2e tests can start a
# worker of "another version" and watch the scheduler refuse it.
build_skew() {
  [ -n "${SHOAL_SKEW_BIN:-}" ] || die "SHOAL_SKEW_BIN must name the skew shoal binary; run 'make images'"
  build_runtime_image "$(shoal_wheel)" "$SKEW_VERSION" runtime-skew "$SHOAL_SKEW_BIN"
}

# The single-user notebook server's packages: python/requirements-notebook.txt.
notebook_requirements() {
  grep -E '^[a-zA-Z]' "$REPO_DIR/python/requirements-notebook.txt"
}

# notebook_base: the runtime base plus a layer with the Jupyter packages, resolved against
# the versions the base already holds (cached, keyed by the base and the requirements).
notebook_base() {
  local base key layout work
  base="$(runtime_base)"
  key="$({ echo "$base"; notebook_requirements; declare -f pip_into_rootfs installed_pins notebook_base; } |
    sha256sum | cut -c1-16)"
  layout="$CACHE/notebook-base-$key"
  if [ -f "$layout/index.json" ]; then
    echo "$layout"
    return
  fi
  work="$CACHE/notebook-base-work"
  rm -rf "$work" && mkdir -p "$work"
  cp -a "$base" "$work/oci"
  umoci unpack --image "$work/oci:base" "$work/bundle" >/dev/null
  installed_pins "$work/bundle/rootfs" >"$work/constraints.txt"
  notebook_requirements >"$work/requirements.txt"
  log "installing the notebook image's Python packages; log: $LOG_DIR/build-image-notebook-pip.log"
  # Compiled (unlike the runtime base): the server imports much and cannot write
  # __pycache__ as jovyan, and a spawn waits for it.
  pip_into_rootfs "$work/bundle/rootfs" -c "$work/constraints.txt" -r "$work/requirements.txt" \
    >"$LOG_DIR/build-image-notebook-pip.log" 2>&1 ||
    { tail -n 40 "$LOG_DIR/build-image-notebook-pip.log" >&2; die "pip install of the notebook packages failed"; }
  umoci repack --image "$work/oci:base" "$work/bundle"
  rm -rf "$work/bundle"
  mv "$work/oci" "$layout"
  rm -rf "$work"
  echo "$layout"
}

# shoal.dev/shoal-notebook:VERSION: the notebook base + the shoal wheel, a writable home
# for jovyan (uid 1000, group users), `jupyterhub-singleuser` by default (KubeSpawner's
# cmd replaces it; tini stays the entrypoint).
build_notebook() {
  local wheel base work key rootfs
  wheel="$(shoal_wheel)"
  base="$(notebook_base)"
  key="$(image_key "$base" "$wheel" "$E2E_DIR/images/notebook/jupyter_server_config.py")"
  if [ -f "$IMAGES/notebook.tar" ] && [ "$(cat "$IMAGES/notebook.key" 2>/dev/null)" = "$key" ]; then
    log "image $NOTEBOOK_IMAGE is up to date ($IMAGES/notebook.tar)"
    return
  fi
  work="$CACHE/notebook-work"
  rm -rf "$work" && mkdir -p "$work"
  cp -a "$base" "$work/oci"
  umoci unpack --image "$work/oci:base" "$work/bundle" >/dev/null
  rootfs="$work/bundle/rootfs"
  install_wheel "$rootfs" "$wheel" notebook
  echo "jovyan:x:1000:100:jovyan:/home/jovyan:/bin/bash" >>"$rootfs/etc/passwd"
  install -d -m 0755 -o 1000 -g 100 "$rootfs/home/jovyan"
  install -D -m 0644 "$E2E_DIR/images/notebook/jupyter_server_config.py" "$rootfs/etc/jupyter/jupyter_server_config.py"
  umoci repack --image "$work/oci:base" "$work/bundle"
  umoci config --image "$work/oci:base" --tag notebook \
    --config.user 1000:100 --config.workingdir /home/jovyan \
    --config.env HOME=/home/jovyan --config.env SHELL=/bin/bash \
    --config.env PYTHONUNBUFFERED=1 --config.env SHOAL_PYTHON=python3 \
    --config.exposedports 8888/tcp \
    --config.entrypoint /usr/bin/tini --config.entrypoint -- \
    --config.cmd jupyterhub-singleuser \
    --config.label "org.opencontainers.image.version=$SHOAL_VERSION"
  pack "$work/oci" notebook "$NOTEBOOK_IMAGE" "$IMAGES/notebook.tar"
  echo "$key" >"$IMAGES/notebook.key"
  rm -rf "$work"
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
  notebook) build_notebook ;;
  all) build_pause && build_runtime && build_operator && build_skew && build_notebook ;;
  *) die "unknown image '$WHAT'; use pause, runtime, operator, skew, notebook or all" ;;
esac

if [ "$WHAT" != pause ] && [ -S "$CONTAINERD_SOCK" ]; then
  import_images
fi
