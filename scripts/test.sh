#!/usr/bin/env bash
# Lint, type-check and run every test (unit, integration, process-level) on this machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/bootstrap.sh
# The store's tests start a private PostgreSQL cluster (trigger_daemon/devtools/postgres.py) from
# Debian's `postgresql` package; install it when missing (CI runs as root, without stdin).
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing PostgreSQL (Debian's postgresql package) for the store's tests" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "warning: PostgreSQL is not installed and cannot be installed here; the store's" \
      "PostgreSQL tests will fail (sudo apt-get install postgresql)" >&2
  fi
fi
# The console's browser tests (tests/integration/test_console.py) drive Debian's Chromium with
# its chromedriver; install them when missing.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing Chromium (Debian's chromium and chromium-driver) for the console's tests" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "warning: chromium and chromium-driver are not installed and cannot be installed" \
      "here; the console's browser tests will fail (sudo apt-get install chromium chromium-driver)" >&2
  fi
fi
# The TypeScript SDK's test (tests/integration/test_formance_sdk_ts.py) runs node on the SDK that
# tests/sdk_ts/package-lock.json pins; `npm ci` runs again only when that lock file changes.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing node and npm (Debian's nodejs and npm packages) for the TypeScript SDK's test" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "warning: node and npm are not installed and cannot be installed here; the TypeScript" \
      "SDK's test will fail (sudo apt-get install nodejs npm)" >&2
  fi
fi
npm_stamp="tests/sdk_ts/node_modules/.installed-$(cksum <tests/sdk_ts/package-lock.json | cut -d' ' -f1)"
if command -v npm >/dev/null && [ ! -f "$npm_stamp" ]; then
  (cd tests/sdk_ts && npm ci --loglevel=error --no-audit --no-fund >/dev/null)
  touch "$npm_stamp"
fi
.venv/bin/ruff check trigger_daemon tests
.venv/bin/ruff format --check trigger_daemon tests
.venv/bin/mypy
.venv/bin/pytest "$@"
