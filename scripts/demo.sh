#!/usr/bin/env bash
# Set up memras in .venv and start the demo: a simulated two-socket server, no root needed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e . 2>&1 | grep -v -e '^WARNING: Location' -e 'Running pip as' || true
exec .venv/bin/memras demo "$@"
