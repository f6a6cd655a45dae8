#!/usr/bin/env bash
# The packaging test (issue 14): pack the package as npm publishes it, install it into a fresh
# temporary prefix, and run the installed `waystation` from a directory outside the repository —
# nothing from the checkout, no dev dependency, no tsx. CI runs it after the tests.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
gateway_pid=""
cleanup() {
  if [ -n "$gateway_pid" ]; then kill "$gateway_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "test-package: FAIL: $*" >&2; exit 1; }

cd "$repo"
version="$(node -p "require('./package.json').version")"
tarball="$(npm pack --silent --pack-destination "$tmp" | tail -1)"
[ -f "$tmp/$tarball" ] || fail "npm pack produced no tarball"
contents="$(tar -tzf "$tmp/$tarball")"
grep -qx 'package/dist/cli/main.js' <<<"$contents" || fail "the package has no dist/cli/main.js (was it built on pack?)"
grep -qx 'package/dist/ui/index.html' <<<"$contents" || fail "the package has no dist/ui/index.html (the dashboard; scripts/build-ui.mjs)"

npm install --global --prefix "$tmp/prefix" --no-audit --no-fund --loglevel=error "$tmp/$tarball" >/dev/null
bin="$tmp/prefix/bin/waystation"
[ -x "$bin" ] || fail "no installed waystation command at $bin"
[ ! -e "$tmp/prefix/lib/node_modules/waystation/node_modules/tsx" ] || fail "tsx was installed"

mkdir "$tmp/work" && cd "$tmp/work"
[ "$("$bin" --version)" = "$version" ] || fail "waystation --version is not $version"
"$bin" init waystation.yaml >/dev/null
"$bin" validate --config waystation.yaml | grep -q 'valid' || fail "validate refused the starter configuration"
sed -i 's/^  listen: 127.0.0.1:8080 .*/  listen: 127.0.0.1:0/' waystation.yaml

# Start the installed gateway, publish once, stop it with SIGTERM: exit 0.
"$bin" start --config waystation.yaml >"$tmp/gateway.log" 2>&1 &
gateway_pid=$!
url=""
for _ in $(seq 1 100); do
  url="$(grep -o '"url":"http://[^"]*"' "$tmp/gateway.log" | head -1 | cut -d'"' -f4 || true)"
  [ -n "$url" ] && break
  kill -0 "$gateway_pid" 2>/dev/null || { cat "$tmp/gateway.log" >&2; fail "the gateway exited at start-up"; }
  sleep 0.1
done
[ -n "$url" ] || { cat "$tmp/gateway.log" >&2; fail "the gateway did not start within 10 s"; }
answer="$(curl -s -w ' %{http_code}' -X POST --data 'hello' "$url/v1/streams/orders/messages")"
[ "${answer##* }" = "202" ] || fail "publish answered ${answer}, not 202"
id="$(node -p "JSON.parse(process.argv[1]).id" "${answer% *}")"
curl -s "$url/v1/messages/$id?wait=delivered&timeout=10s" | grep -q '"settled":true' || fail "message $id was not delivered"
# The dashboard, from the installed package: the page and the script it names, 200 each.
[ "$(curl -s -o "$tmp/ui.html" -w '%{http_code}' "$url/ui")" = "200" ] || fail "GET /ui did not answer 200"
asset="$(grep -o '/ui/assets/app-[A-Za-z0-9]*\.js' "$tmp/ui.html" | head -1)"
[ -n "$asset" ] || fail "the /ui page names no script"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$url$asset")" = "200" ] || fail "GET $asset did not answer 200"
kill -TERM "$gateway_pid"
wait "$gateway_pid" || fail "the gateway did not exit 0 on SIGTERM"
gateway_pid=""
grep -q "\"id\":\"$id\"" data/out/orders.ndjson || fail "the archive route did not deliver the message"
[ -f data/LOCK ] && fail "LOCK left behind after a clean stop"
# On a terminal (a pty from script(1)) the installed gateway logs readable lines, not JSON.
if command -v script >/dev/null; then
  sed 's#^dataDir: .*#dataDir: ./data-tty#' waystation.yaml >tty.yaml
  timeout 8 script -qfec "$bin start --config tty.yaml" /dev/null >"$tmp/tty.log" 2>&1 || true
  tr -d '\r' <"$tmp/tty.log" | sed 's/\x1b\[[0-9;]*m//g' | grep -qE '^\[[0-9:.]+\] INFO \([0-9]+\): waystation listening on http' ||
    { cat "$tmp/tty.log" >&2; fail "on a terminal the gateway did not log readable lines"; }
  if grep -q '"level":' "$tmp/tty.log"; then fail "on a terminal the gateway logged JSON"; fi
fi

echo "test-package: waystation $version packs, installs into a fresh prefix and runs from $tmp/work: ok"
