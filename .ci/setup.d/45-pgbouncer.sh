#!/usr/bin/env bash
# The school-database tests and the bench start private PgBouncers (test/helpers/pgbouncer.ts)
# from Debian's package; none of them uses the packaged service.
set -euo pipefail
if ! command -v pgbouncer >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer
fi
echo "pgbouncer ready: $(pgbouncer --version | head -1)"
