#!/usr/bin/env bash
# The real Unleash server the flag tests start (test/helpers/unleash.ts): installed from its own
# lockfile into test/unleash-server/node_modules, apart from ficus's dependencies.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.tools/node24/node_modules/node/bin:$PATH"

dir=test/unleash-server
stamp="$dir/node_modules/.ficus-installed-lock.sha256"
want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$dir/node_modules/unleash-server/package.json" ]; then
  echo "unleash-server already installed from this lockfile"
  exit 0
fi

# Install scripts stay off: none is needed to run the server (the native ssh2/cpu-features
# builds are optional), and one of them (@scarf/scarf) only reports the install to a third party.
SCARF_ANALYTICS=false npm ci --prefix "$dir" --ignore-scripts --no-audit --no-fund
echo "$want" > "$stamp"
echo "unleash-server $(node -p "require('./$dir/node_modules/unleash-server/package.json').version") installed"
