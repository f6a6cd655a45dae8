#!/usr/bin/env bash
# Installs a nats-server new enough for the cluster tests (>= 2.11) into a cache directory and
# prints the binary's path on stdout (everything else goes to stderr).
#
# Debian bookworm ships nats-server 2.9.10, which silently ignores per-key TTLs and lacks
# message TTLs and consumer pause. Debian's newer suites carry newer servers: this script asks
# apt for the package from trixie (then sid) through a PRIVATE sources list and private state
# and cache directories, so the system's apt state (/var/lib/apt, /var/cache/apt, sources) is
# never read or written, then unpacks the .deb with dpkg-deb -x. Nothing is installed system-wide.
#
# Idempotent: when the cache already holds a binary >= 2.11, it only prints its path (fast).
# No version string is pinned: whatever the suite carries is accepted if it is >= 2.11.
#
# Environment:
#   WAYSTATION_NATS_CACHE   cache directory (default: ${XDG_CACHE_HOME:-$HOME/.cache}/waystation/nats-server)
#   WAYSTATION_NATS_SUITES  Debian suites to try in order (default: "trixie sid")
#
# The binary is reachable at "$WAYSTATION_NATS_CACHE/bin/nats-server"; test/support/nats-cluster.ts
# looks there (or at $WAYSTATION_NATS_SERVER, if set).
set -euo pipefail

MIN_VERSION=2.11.0
CACHE="${WAYSTATION_NATS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/waystation/nats-server}"
SUITES="${WAYSTATION_NATS_SUITES:-trixie sid}"
MIRROR="http://deb.debian.org/debian"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
BIN="$CACHE/bin/nats-server"

say() { echo "install-nats-server: $*" >&2; }
die() {
  say "ERROR: $*"
  say "the cluster tests need nats-server >= $MIN_VERSION; install one and set WAYSTATION_NATS_SERVER=<path>, or fix the cause above and rerun scripts/install-nats-server.sh"
  exit 1
}

# "nats-server: v2.11.4" -> "2.11.4"
version_of() { "$1" --version 2>/dev/null | sed -n 's/^nats-server: v\{0,1\}\([0-9][0-9.]*\).*/\1/p' | head -n1; }

# true when $1 >= $2 (dotted versions)
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

usable() {
  [ -x "$1" ] || return 1
  local v
  v="$(version_of "$1")"
  [ -n "$v" ] && version_ge "$v" "$MIN_VERSION"
}

if usable "$BIN"; then
  say "cached nats-server v$(version_of "$BIN") (>= $MIN_VERSION)"
  echo "$BIN"
  exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found (this script needs a Debian-based system)"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"
[ -r "$KEYRING" ] || die "$KEYRING not found (package debian-archive-keyring)"

mkdir -p "$CACHE"
WORK="$(mktemp -d "$CACHE/.work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

found=""
for suite in $SUITES; do
  apt_dir="$CACHE/apt-$suite"
  mkdir -p "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/etc"
  cat >"$apt_dir/etc/waystation.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $suite
Components: main
Signed-By: $KEYRING
EOF
  # Every path apt would read or write is private; the system's preferences are ignored too.
  apt_opts=(
    -o "Dir::Etc::sourcelist=$apt_dir/etc/waystation.sources"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::Etc::preferences=/dev/null"
    -o "Dir::Etc::preferencesparts=-"
    -o "Dir::State=$apt_dir/state"
    -o "Dir::State::status=/dev/null"
    -o "Dir::Cache=$apt_dir/cache"
    -o "APT::Sandbox::User=root"
    -o "Acquire::Languages=none"
    -o "Acquire::Retries=3"
    -o "Debug::NoLocking=true"
    -q
  )
  say "fetching the package index of Debian $suite (private apt state in $apt_dir)"
  if ! DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update >"$WORK/update-$suite.log" 2>&1; then
    say "apt-get update for $suite failed:"
    sed 's/^/  /' "$WORK/update-$suite.log" >&2
    continue
  fi
  rm -f "$WORK"/*.deb
  if ! (cd "$WORK" && DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" download nats-server) \
    >"$WORK/download-$suite.log" 2>&1; then
    say "apt-get download nats-server from $suite failed:"
    sed 's/^/  /' "$WORK/download-$suite.log" >&2
    continue
  fi
  deb="$(ls "$WORK"/nats-server_*.deb 2>/dev/null | head -n1 || true)"
  [ -n "$deb" ] || { say "no .deb after downloading from $suite"; continue; }
  rm -rf "$WORK/pkg"
  dpkg-deb -x "$deb" "$WORK/pkg" || { say "dpkg-deb -x $deb failed"; continue; }
  rel=""
  for r in usr/sbin/nats-server usr/bin/nats-server; do
    [ -x "$WORK/pkg/$r" ] && { rel="$r"; break; }
  done
  if [ -z "$rel" ]; then
    say "$(basename "$deb") holds no usr/sbin/nats-server or usr/bin/nats-server"
    continue
  fi
  candidate="$WORK/pkg/$rel"
  v="$(version_of "$candidate")"
  if [ -z "$v" ] || ! version_ge "$v" "$MIN_VERSION"; then
    say "Debian $suite carries nats-server ${v:-of unknown version}, older than $MIN_VERSION"
    continue
  fi
  say "Debian $suite: $(basename "$deb") -> nats-server v$v"
  found="$suite"
  break
done

[ -n "$found" ] || die "could not get nats-server >= $MIN_VERSION from Debian suites: $SUITES"

# Replace the cached tree in one rename, so a crash never leaves half a binary behind.
rm -rf "$CACHE/pkg.old"
[ -e "$CACHE/pkg" ] && mv "$CACHE/pkg" "$CACHE/pkg.old"
mv "$WORK/pkg" "$CACHE/pkg"
rm -rf "$CACHE/pkg.old"
mkdir -p "$CACHE/bin"
ln -sfn "../pkg/$rel" "$BIN"
rm -rf "$CACHE"/apt-*  # the package indexes are only needed again when the binary is
usable "$BIN" || die "installed $BIN but it does not run or reports a version below $MIN_VERSION"
echo "$BIN"
