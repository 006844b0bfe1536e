#!/usr/bin/env bash
# Run by `npm test` before the suite (`pretest`): checks what the tests talk to and installs,
# idempotently, what `npm ci` does not: the Debian packages of the Python legacy fixture and of the
# browser tests, and the pinned Unleash server in test/unleash-server. Anything it cannot provide
# (a service down, no root, no network) stops the run with one message naming it and the fix.
set -uo pipefail
cd "$(dirname "$0")/.."

problems=()
say () { printf 'provision: %s\n' "$*"; }

# Node 24: the suite runs the TypeScript sources with Node's type stripping.
major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$major" -lt 24 ]; then
  problems+=("Node 24 is required, this is $(node -v 2>/dev/null || echo 'no node'): install it with \`npm install --prefix .tools/node24 node@24 && export PATH=\"\$PWD/.tools/node24/node_modules/node/bin:\$PATH\"\`")
fi

# Services first: without them nothing else matters.
reachable () { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
if ! reachable 127.0.0.1 5432; then
  problems+=("PostgreSQL is not reachable on 127.0.0.1:5432 (trust auth, user postgres): start it with \`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql 2>/dev/null | head -n1 || echo 15) main start\` (or \`systemctl start postgresql\`)")
fi
if ! reachable 127.0.0.1 6379; then
  problems+=("Redis is not reachable on 127.0.0.1:6379: start it with \`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no\`")
fi
for tool in redis-server; do
  command -v "$tool" >/dev/null 2>&1 || problems+=("\`$tool\` is not on PATH (the tests start private instances): install the Debian package redis-server")
done
if [ "${#problems[@]}" -gt 0 ]; then
  for problem in "${problems[@]}"; do say "$problem"; done
  exit 1
fi

# Debian packages: the Flask legacy fixture runs on /usr/bin/python3 with Debian's Flask and
# friends (not a pyenv python first on PATH); pages are tested in Debian's chromium; the school
# databases are also reached through a private pgbouncer; the deploy manifests are rendered with
# kubectl's kustomize.
PACKAGES=(python3 python3-flask python3-flask-session python3-redis python3-flask-login python3-flaskext.wtf chromium pgbouncer kubectl)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
else
  /usr/bin/python3 -c 'import flask, flask_session, redis, flask_login, flask_wtf' 2>/dev/null || missing+=(python3-flask python3-flask-session python3-redis python3-flask-login python3-flaskext.wtf)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v pgbouncer >/dev/null 2>&1 || missing+=(pgbouncer)
  command -v kubectl >/dev/null 2>&1 || missing+=(kubectl)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "missing Debian packages: ${missing[*]}; install them with \`sudo apt-get install -y --no-install-recommends ${missing[*]}\` (this run is not root, so it cannot)"
    exit 1
  fi
  say "installing ${missing[*]}"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/tmp/ficus-provision-apt.log 2>&1; then
    say "could not install ${missing[*]} (no network to the Debian mirror?); see /tmp/ficus-provision-apt.log, then run \`apt-get install -y --no-install-recommends ${missing[*]}\`"
    exit 1
  fi
fi

# The real Unleash server the flag tests start: installed from its own lockfile, apart from
# ficus's dependencies, once per lockfile.
dir=test/unleash-server
stamp="$dir/node_modules/.ficus-installed-lock.sha256"
want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -f "$dir/node_modules/unleash-server/package.json" ]; then
  say "installing the pinned Unleash server into $dir (npm ci)"
  # Install scripts stay off: none is needed to run the server, and one (@scarf/scarf) only
  # reports the install to a third party.
  if ! SCARF_ANALYTICS=false npm ci --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error >/tmp/ficus-provision-unleash.log 2>&1; then
    say "could not install the Unleash server into $dir (no access to the npm registry?); see /tmp/ficus-provision-unleash.log, then run \`npm ci --prefix $dir --ignore-scripts\`"
    exit 1
  fi
  echo "$want" > "$stamp"
fi
say "ready: PostgreSQL, Redis, Debian packages, Unleash server $(node -p "require('./$dir/node_modules/unleash-server/package.json').version")"
