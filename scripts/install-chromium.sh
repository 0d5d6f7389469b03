#!/usr/bin/env bash
# Install Debian's chromium (used headless by tests/test_viz.py) when it is missing.
# Quiet and idempotent; never fails the caller: without root or apt it only says why.
set -uo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-chromium: /usr/bin/chromium is missing and this is not root;" \
    "install it with 'sudo apt-get install chromium' (the kedro-viz test will be skipped)." >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: no apt-get here; install chromium yourself" \
    "(the kedro-viz test will be skipped)." >&2
  exit 0
fi

echo "install-chromium: installing Debian's chromium (about a minute) ..." >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if { apt-get update -qq -o DPkg::Lock::Timeout=300 \
  && apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 chromium; } \
  >"$log" 2>&1 && [ -x /usr/bin/chromium ]; then
  echo "install-chromium: $(/usr/bin/chromium --version 2>/dev/null) installed." >&2
else
  tail -n 5 "$log" >&2
  echo "install-chromium: apt-get could not install chromium" \
    "(the kedro-viz test will be skipped)." >&2
fi
rm -f "$log"
exit 0
