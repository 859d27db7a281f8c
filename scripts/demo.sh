#!/usr/bin/env bash
# The main job on this machine: Tansu broker + stub orchestration API + the daemon + events.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
exec "$root/.venv/bin/trigger-daemon" demo "$@"
