#!/usr/bin/env bash
# The console's page tests drive Debian's Chromium (/usr/bin/chromium) through playwright-core;
# no browser is ever downloaded.
set -euo pipefail
if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q 'install ok installed'; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
fi
echo "chromium ready: $(/usr/bin/chromium --version 2>/dev/null || echo unknown)"
