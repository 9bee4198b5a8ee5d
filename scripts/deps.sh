#!/usr/bin/env bash
# scripts/deps.sh - install everything podctl needs on Debian 12 (bookworm),
# x86_64, as root, with apt-get only. Called by `make deps`.
#
# Idempotent and quick when nothing is missing: apt-get is not run at all when
# every package below is installed and a `criu` >= $CRIU_MIN works.
#
# CRIU: bookworm's criu (3.17) does not work on our kernels (see
# /work/shared/ENVIRONMENT.md, section CRIU). When no criu >= $CRIU_MIN is
# available from the distribution, the criu .debs and their library
# dependencies are downloaded from Debian sid (apt source pinned at priority 50,
# so nothing on the system is ever upgraded from it), unpacked with `dpkg -x`
# into the private prefix $CRIU_PREFIX and run through that prefix's own
# dynamic loader by the wrapper $CRIU_WRAPPER. Nothing is installed from sid.
set -euo pipefail

# ---------------------------------------------------------------------------
# Package lists: add a package by adding one line.
# ---------------------------------------------------------------------------

# Installed with apt-get from the distribution (-t $DIST).
APT_PACKAGES=(
  nftables
  iproute2
  iptables
  procps
  psmisc
  util-linux
  curl
  iputils-ping
  socat
  python3    # Debian's /usr/bin/python3 (a pyenv python is not enough)
  kmod
  nginx        # the web-server pod of the checkpoint/migrate benchmarks
  gcc          # builds podinit, the pods' static C init (cmd/podinit)
  libc6-dev    # its static libc (libc.a)
  libseccomp-dev  # static libseccomp: libcontainer applies pods' seccomp filters with it
  pkg-config   # finds libseccomp for cgo
  # Wasm vessels (issue 4): C workloads for WASI, Asyncify, other ISAs' docks
  clang-14
  lld-14
  wasi-libc
  libclang-rt-14-dev-wasm32
  binaryen          # wasm-opt: Asyncify
  wabt              # wasm-validate, in tests
  qemu-user-static  # docks of other ISAs: qemu-aarch64-static ./podctl-arm64 dock
  # podctl compare (issue 17): Podman's checkpoint, what a user would pick
  # instead; runc, since bookworm's crun is built without CRIU
  podman
  runc
  # desktop pods (issue 18): the X session inside a pod, and the tools
  # its tests drive it with
  tigervnc-standalone-server  # Xvnc: an X server with its VNC server
  tigervnc-tools    # vncpasswd
  twm
  xterm
  xfonts-base       # the fixed fonts xterm draws with
  xfonts-75dpi      # the Helvetica of twm's title bars
  x11-apps          # xclock, xwd (podctl screenshot)
  x11-utils         # xwininfo, in tests
  x11-xserver-utils # xsetroot, in tests
  xdotool           # types into the desktop, in tests
  vim-tiny          # vi, whose unsaved text a migration keeps, in tests
  tmux              # ptys in pods that are not desktops, in tests
  openssh-server    # an sshd session in a pod, in tests (never started on the host)
  openssh-client
  novnc             # the web client served on port 5800
  websockify
  chromium          # the browser of the noVNC test (chromedp)
)

# Downloaded from sid (never installed) and unpacked into $CRIU_PREFIX when the
# distribution has no criu >= $CRIU_MIN. criu's full run-time library closure.
CRIU_SID_PACKAGES=(
  criu
  libcompel1
  libc6
  libgcc-s1
  libgnutls30t64
  libnettle8t64
  libhogweed6t64
  libnftables1
  libnftnl11
  libmnl0
  libxtables12
  libnl-3-200
  libprotobuf-c1
  libnet9
  libbsd0
  libmd0
  libuuid1
  libunistring5
  libidn2-0
  libp11-kit0
  libtasn1-6
  libgmp10
  libffi8
  libjansson4
  libedit2
)

# Kernel settings (applied now and persisted in $SYSCTL_CONF).
SYSCTLS=(
  fs.pipe-max-size=4194304   # CRIU lazy pages (remote) grow pipes past 1 MiB
  net.ipv4.ip_forward=1
)

# ---------------------------------------------------------------------------

CRIU_MIN=4.2
CRIU_PREFIX=/opt/podctl/criu
CRIU_DEBS=/opt/podctl/criu-debs
CRIU_WRAPPER=/usr/local/sbin/criu
SID_SOURCES=/etc/apt/sources.list.d/podctl-sid.sources
SID_PREFS=/etc/apt/preferences.d/podctl-sid
SYSCTL_CONF=/etc/sysctl.d/60-podctl.conf
LOCK_FILE=/run/podctl-deps.lock
ARCH_TRIPLET=x86_64-linux-gnu

DIST=$( (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}") || true)
DIST=${DIST:-bookworm}

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

log() { echo "deps: $*"; }
die() { echo "deps: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
[ "$(uname -m)" = x86_64 ] || die "only x86_64 is supported (found $(uname -m))"
command -v apt-get >/dev/null || die "apt-get not found: a Debian system is required"

# One run at a time.
exec 9>"$LOCK_FILE"
if ! flock -n 9; then
  log "waiting for another deps run ($LOCK_FILE)"
  flock -w 1800 9 || die "timed out waiting for $LOCK_FILE"
fi

# version_ge A B: true when Debian version A >= B.
version_ge() { dpkg --compare-versions "$1" ge "$2"; }

# criu_version CMD...: print the version reported by `CMD --version`, or nothing.
criu_version() {
  local out
  out=$(timeout -k 5 30 "$@" --version 2>/dev/null </dev/null) || return 0
  sed -n 's/^Version: *\([0-9][0-9.]*\).*/\1/p' <<<"$out" | head -n1
}

# criu_good CMD...: true when CMD runs and reports version >= CRIU_MIN.
criu_good() {
  local v
  v=$(criu_version "$@")
  [ -n "$v" ] && version_ge "$v" "$CRIU_MIN"
}

# write_file PATH MODE: write stdin to PATH when the content differs.
write_file() {
  local path=$1 mode=$2 tmp
  tmp=$(mktemp "$path.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    return 0
  fi
  mv -f "$tmp" "$path"
  log "wrote $path"
}

APT_UPDATED=
apt_update_once() {
  [ -z "$APT_UPDATED" ] || return 0
  log "apt-get update"
  apt-get "${APT_OPTS[@]}" -q update </dev/null || die "apt-get update failed"
  APT_UPDATED=1
}

# Packages from APT_PACKAGES that are not fully installed.
missing_packages() {
  local status
  status=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${APT_PACKAGES[@]}" 2>/dev/null || true)
  local p
  for p in "${APT_PACKAGES[@]}"; do
    grep -qx "$p ii *" <<<"$status" || echo "$p"
  done
}

# Highest criu version the distribution ($DIST, $DIST-updates, ...) offers.
distro_criu_version() {
  local best="" v
  while read -r v; do
    [ -n "$v" ] || continue
    if [ -z "$best" ] || version_ge "$v" "$best"; then best=$v; fi
  done < <(apt-cache madison criu 2>/dev/null |
           awk -F'|' -v d="$DIST" '$3 ~ (" " d "[-/]") && $3 ~ /Packages/ {gsub(/ /, "", $2); print $2}')
  echo "$best"
}

ensure_sid_source() {
  write_file "$SID_SOURCES" 0644 <<EOF
# Added by podctl scripts/deps.sh: used only to download CRIU >= $CRIU_MIN
# (apt-get download -t sid), never to install. Pinned low in $SID_PREFS.
Types: deb
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  write_file "$SID_PREFS" 0644 <<EOF
# Added by podctl scripts/deps.sh: never upgrade or install anything from sid.
Package: *
Pin: release n=sid
Pin-Priority: 50
EOF
  # A fresh pin must be in place before the source is first used.
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] ||
    die "/usr/share/keyrings/debian-archive-keyring.gpg missing (package debian-archive-keyring)"
}

# Private-prefix CRIU --------------------------------------------------------

# Loader and library path inside prefix $1 (prints "LOADER LIBPATH").
prefix_layout() {
  local p=$1 loader="" libpath="" d
  for d in "$p/usr/lib/$ARCH_TRIPLET" "$p/lib/$ARCH_TRIPLET" "$p/usr/lib64" "$p/lib64"; do
    if [ -z "$loader" ] && [ -e "$d/ld-linux-x86-64.so.2" ]; then loader="$d/ld-linux-x86-64.so.2"; fi
  done
  for d in "$p/usr/lib/$ARCH_TRIPLET" "$p/lib/$ARCH_TRIPLET"; do
    [ -d "$d" ] && [ ! -L "$d" ] && libpath="${libpath:+$libpath:}$d"
  done
  [ -n "$loader" ] && [ -n "$libpath" ] || return 1
  echo "$loader $libpath"
}

# prefix_ok P: the criu in P finds all its libraries and is >= CRIU_MIN.
prefix_ok() {
  local p=$1 layout loader libpath missing
  [ -x "$p/usr/sbin/criu" ] || return 1
  layout=$(prefix_layout "$p") || return 1
  read -r loader libpath <<<"$layout"
  missing=$("$loader" --library-path "$libpath" --list "$p/usr/sbin/criu" 2>&1 | grep 'not found' || true)
  if [ -n "$missing" ]; then
    log "criu in $p lacks libraries (add their sid packages to CRIU_SID_PACKAGES):"
    sed 's/^/deps:   /' <<<"$missing"
    return 1
  fi
  criu_good "$loader" --library-path "$libpath" "$p/usr/sbin/criu"
}

install_wrapper() {
  local layout loader libpath
  layout=$(prefix_layout "$CRIU_PREFIX") || die "no loader in $CRIU_PREFIX"
  read -r loader libpath <<<"$layout"
  mkdir -p "$(dirname "$CRIU_WRAPPER")"
  write_file "$CRIU_WRAPPER" 0755 <<EOF
#!/bin/sh
# Installed by podctl scripts/deps.sh: CRIU from Debian sid, unpacked in a
# private prefix and run with that prefix's own glibc loader and libraries.
exec $loader --library-path $libpath $CRIU_PREFIX/usr/sbin/criu "\$@"
EOF
}

# cached_debs_complete: every CRIU_SID_PACKAGES has exactly one .deb cached.
cached_debs_complete() {
  local p n
  [ -d "$CRIU_DEBS" ] || return 1
  for p in "${CRIU_SID_PACKAGES[@]}"; do
    n=$(find "$CRIU_DEBS" -maxdepth 1 -name "${p}_*.deb" | wc -l)
    [ "$n" = 1 ] || return 1
  done
}

# unpack_debs: rebuild CRIU_PREFIX from the cached .debs; true if criu works.
unpack_debs() {
  local new="$CRIU_PREFIX.new" deb
  rm -rf "$new"
  mkdir -p "$new"
  for deb in "$CRIU_DEBS"/*.deb; do
    dpkg -x "$deb" "$new" || { rm -rf "$new"; die "dpkg -x $deb failed"; }
  done
  if ! prefix_ok "$new"; then
    rm -rf "$new"
    return 1
  fi
  # The wrapper uses absolute paths under CRIU_PREFIX: swap directories.
  rm -rf "$CRIU_PREFIX"
  mv "$new" "$CRIU_PREFIX"
}

download_sid_debs() {
  local tmp
  mkdir -p "$(dirname "$CRIU_DEBS")"
  tmp=$(mktemp -d "$CRIU_DEBS.tmp.XXXXXX")
  chmod 0755 "$tmp"
  # Let apt download as its sandbox user (avoids the "unsandboxed" warning).
  if id _apt >/dev/null 2>&1; then chown _apt "$tmp"; fi
  log "downloading from sid: ${CRIU_SID_PACKAGES[*]}"
  if ! (cd "$tmp" && apt-get "${APT_OPTS[@]}" -q download -t sid "${CRIU_SID_PACKAGES[@]}" </dev/null); then
    rm -rf "$tmp"
    die "apt-get download -t sid failed"
  fi
  chown -R root:root "$tmp"
  rm -rf "$CRIU_DEBS"
  mv "$tmp" "$CRIU_DEBS"
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

mapfile -t MISSING < <(missing_packages)

# How do we get a working criu? ok | wrapper | distro | sid
CRIU_ACTION=ok
if criu_good criu; then
  CRIU_ACTION=ok
elif prefix_ok "$CRIU_PREFIX"; then
  log "reusing CRIU in $CRIU_PREFIX"
  install_wrapper
elif cached_debs_complete && unpack_debs; then
  log "unpacked CRIU from cached debs in $CRIU_DEBS"
  install_wrapper
else
  CRIU_ACTION=sid
  v=$(distro_criu_version)
  if [ -n "$v" ] && version_ge "$v" "$CRIU_MIN"; then
    CRIU_ACTION=distro
  fi
fi

if [ "${#MISSING[@]}" -eq 0 ] && [ "$CRIU_ACTION" = ok ] && criu_good criu; then
  log "all packages present, $(command -v criu) $(criu_version criu) ok"
else
  # Configure sid before the (single) apt-get update when it may be needed.
  if [ "$CRIU_ACTION" = sid ]; then
    log "no criu >= $CRIU_MIN in $DIST (candidate: ${v:-none}); using Debian sid debs"
    ensure_sid_source
  fi
  if [ "${#MISSING[@]}" -gt 0 ] || [ "$CRIU_ACTION" != ok ]; then
    apt_update_once
  fi
  if [ "${#MISSING[@]}" -gt 0 ]; then
    log "installing: ${MISSING[*]}"
    # Installed packages must not start services on the host (nginx would
    # take port 80): a policy-rc.d that refuses, for the install only.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod 0755 /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get "${APT_OPTS[@]}" -q install -y --no-install-recommends -t "$DIST" "${MISSING[@]}" </dev/null ||
      die "apt-get install ${MISSING[*]} failed"
  fi
  if [ "$CRIU_ACTION" = sid ]; then
    # The lists are fresh now: the distribution may offer criu >= CRIU_MIN.
    v=$(distro_criu_version)
    if [ -n "$v" ] && version_ge "$v" "$CRIU_MIN"; then CRIU_ACTION=distro; fi
  fi
  case $CRIU_ACTION in
    distro)
      v=$(distro_criu_version)
      log "installing criu $v from $DIST"
      apt-get "${APT_OPTS[@]}" -q install -y --no-install-recommends -t "$DIST" "criu=$v" </dev/null ||
        die "apt-get install criu=$v failed"
      ;;
    sid)
      download_sid_debs
      log "unpacking into $CRIU_PREFIX"
      unpack_debs || die "criu unpacked from sid debs in $CRIU_PREFIX does not work"
      install_wrapper
      ;;
  esac
fi

# Kernel settings ------------------------------------------------------------
conf="# Written by podctl scripts/deps.sh"$'\n'
for kv in "${SYSCTLS[@]}"; do
  key=${kv%%=*} val=${kv#*=}
  conf+="$key = $val"$'\n'
  cur=$(sysctl -n "$key" 2>/dev/null) || die "sysctl $key not available"
  if [ "$cur" != "$val" ]; then
    sysctl -q -w "$key=$val" >/dev/null || die "sysctl -w $key=$val failed"
    log "sysctl $key=$val (was $cur)"
  fi
done
printf '%s' "$conf" | write_file "$SYSCTL_CONF" 0644

# Verification ---------------------------------------------------------------
[ -x /usr/bin/python3 ] || die "/usr/bin/python3 missing"
CRIU_BIN=$(command -v criu || true)
if [ -z "$CRIU_BIN" ] && [ -x "$CRIU_WRAPPER" ]; then
  log "warning: $(dirname "$CRIU_WRAPPER") is not on PATH"
  CRIU_BIN=$CRIU_WRAPPER
fi
[ -n "$CRIU_BIN" ] || die "criu not found on PATH"
CRIU_VER=$(criu_version "$CRIU_BIN")
[ -n "$CRIU_VER" ] && version_ge "$CRIU_VER" "$CRIU_MIN" ||
  die "$CRIU_BIN reports version '${CRIU_VER:-?}', need >= $CRIU_MIN"
log "$CRIU_BIN: Version $CRIU_VER"
check_out=$(timeout -k 5 120 "$CRIU_BIN" check 2>&1 </dev/null) || true
sed 's/^/deps: criu check: /' <<<"$check_out"
grep -q "Looks good" <<<"$check_out" || die "criu check did not say 'Looks good'"
log "done in ${SECONDS}s"
