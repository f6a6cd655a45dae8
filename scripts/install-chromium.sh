#!/usr/bin/env bash
# Debian's Chromium for the dashboard's browser tests (test/ui, driven by playwright-core with
# executablePath /usr/bin/chromium): installed from Debian's packages when it is missing, since a
# browser download at `npm ci` time fails on these machines. Prints its path; fast when present.
set -euo pipefail
bin=/usr/bin/chromium
if [ ! -x "$bin" ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >&2
fi
[ -x "$bin" ] || { echo "install-chromium: no $bin after apt-get install chromium" >&2; exit 1; }
echo "$bin"
