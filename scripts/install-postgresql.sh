#!/usr/bin/env bash
# Install Debian's PostgreSQL server (used by tests/integration/test_team_tracking_postgres.py,
# which starts its own throw-away cluster on 127.0.0.1) when it is missing.
# Quiet and idempotent; never fails the caller: without root or apt it only says why.
# Debian starts a cluster of its own on port 5432 when it installs the package (where
# systemd or an init script runs); the test does not use it.
set -uo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
skipped="(the PostgreSQL tracking test will be skipped)"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-postgresql: no PostgreSQL server here and this is not root;" \
    "install it with 'sudo apt-get install postgresql' $skipped." >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-postgresql: no apt-get here; install a PostgreSQL server yourself $skipped." >&2
  exit 0
fi

echo "install-postgresql: installing Debian's postgresql ..." >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
start=$SECONDS
if { apt-get update -qq -o DPkg::Lock::Timeout=300 \
  && apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 postgresql; } \
  >"$log" 2>&1 && compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  echo "install-postgresql: $(ls -d /usr/lib/postgresql/*/bin | tail -n 1) installed" \
    "in $((SECONDS - start)) s." >&2
else
  tail -n 5 "$log" >&2
  echo "install-postgresql: apt-get could not install postgresql $skipped." >&2
fi
rm -f "$log"
exit 0
