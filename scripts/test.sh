#!/usr/bin/env bash
# Lint, type-check and run every test (unit, integration, process-level) on this machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/bootstrap.sh
.venv/bin/ruff check trigger_daemon tests
.venv/bin/ruff format --check trigger_daemon tests
.venv/bin/mypy
.venv/bin/pytest "$@"
