#!/usr/bin/env bash
# Set up everything the whole test suite needs, then run it: unit, TUI and lab tiers.
# Used as-is by .ci/run. Safe to rerun: every step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v qemu-system-x86_64 >/dev/null || need_apt+=(qemu-system-x86)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx cpio || need_apt+=(busybox-static)
command -v ras-mc-ctl >/dev/null || need_apt+=(rasdaemon)
command -v modprobe >/dev/null || need_apt+=(kmod)
command -v lsmem >/dev/null || need_apt+=(util-linux)
command -v tmux >/dev/null || need_apt+=(tmux)
command -v unshare >/dev/null || need_apt+=(util-linux)
# systemd-analyze verify/security on contrib/systemd (tests/unit/deploy); nothing is started
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
# promtool check/test rules on contrib/prometheus, a real server scraping memras (tests/unit/metrics)
command -v promtool >/dev/null || need_apt+=(prometheus)
# a real BMC for the [bmc] tests: OpenIPMI's ipmi_sim, driven with Debian's ipmitool
command -v ipmi_sim >/dev/null || need_apt+=(openipmi)
command -v ipmitool >/dev/null || need_apt+=(ipmitool)
# a throw-away PostgreSQL cluster (tests/fixtures/postgres.py): the fleet and two-dialect tests
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing system packages: ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "!! missing system packages: ${need_apt[*]} (run: sudo apt-get install ${need_apt[*]})" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
echo "== installing memras and its test dependencies"
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v -e '^WARNING: Location' -e 'Running pip as' || true

set +e
echo "== ruff"
.venv/bin/ruff check memras tui plugins tests bench
lint=$?

echo "== layer contract (imports flow downward: docs/architecture.md, Layers)"
.venv/bin/python tests/unit/test_layers.py
layers=$?

echo "== mypy (memras, tui, plugins)"
# files and settings: [tool.mypy] in pyproject.toml; tui/ and plugins/ are checked under
# their installed names through mypy-layout/ (a missing one is an error, not a skip)
.venv/bin/mypy
types=$?

echo "== pytest (unit, TUI, lab)"
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "!! pytest collected no tests: that is a failure" >&2
  exit 1
fi
if [ "$lint" != 0 ]; then
  echo "!! ruff found problems (see above): failing the run" >&2
  [ "$status" = 0 ] && status=1
fi
if [ "$layers" != 0 ]; then
  echo "!! an import runs against the layer contract (see above): failing the run" >&2
  [ "$status" = 0 ] && status=1
fi
if [ "$types" != 0 ]; then
  echo "!! mypy found problems (see above): failing the run" >&2
  [ "$status" = 0 ] && status=1
fi
exit "$status"
