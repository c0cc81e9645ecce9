#!/usr/bin/env bash
# Set up everything the whole test suite needs, then run it: unit, TUI and lab tiers.
# Used as-is by .ci/run. Safe to rerun: every step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v qemu-system-x86_64 >/dev/null || need_apt+=(qemu-system-x86)
# (grep reads the whole list: with -q it could exit first, and pipefail would count the
# SIGPIPE busybox then gets as "no cpio")
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -x cpio >/dev/null || need_apt+=(busybox-static)
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
  # The distribution's python3 when it is 3.11 or newer: Debian builds it with PGO and
  # LTO, and it runs the unit tier with ~30 % less CPU than a from-source build without
  # them (pyenv's default; measured 24 s against 33-36 s of user time on tests/unit/health).
  # The lab guests run this same interpreter under TCG, where CPU is wall time.
  python=python3
  if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    python=/usr/bin/python3
  fi
  echo "== creating .venv ($("$python" --version) at $(command -v "$python"))"
  if ! "$python" -m venv .venv; then  # Debian without python3-venv: the other python3
    rm -rf .venv
    python3 -m venv .venv
  fi
fi
echo "== installing memras and its test dependencies"
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v -e '^WARNING: Location' -e 'Running pip as' || true

# Bytecode for the project's own modules, written once: with PYTHONDONTWRITEBYTECODE set
# (as on this machine) every `memras` the tests start would compile ~200 modules again.
.venv/bin/python -m compileall -q memras tui plugins >/dev/null || true

set +e
# ruff, the layer contract and mypy: in the background beside the tests (about two
# minutes of one core that would otherwise run before any test); their output and
# statuses are read after the tests.
checks=$(mktemp -d)
run_checks() {
  echo "== ruff"
  .venv/bin/ruff check memras tui plugins tests bench; echo $? >"$checks/lint"
  echo "== layer contract (imports flow downward: docs/architecture.md, Layers)"
  .venv/bin/python tests/unit/test_layers.py; echo $? >"$checks/layers"
  echo "== mypy (memras, tui, plugins)"
  # files and settings: [tool.mypy] in pyproject.toml; tui/ and plugins/ are checked under
  # their installed names through mypy-layout/ (a missing one is an error, not a skip)
  .venv/bin/mypy; echo $? >"$checks/types"
}
echo "== ruff, layer contract and mypy started beside the tests; their output follows"
run_checks >"$checks/out" 2>&1 &
checks_pid=$!

if [ $# -gt 0 ]; then
  echo "== pytest $*"
  .venv/bin/python -m pytest "$@"
  status=$?
else
  # The whole suite as two pytest runs side by side, one per core: the lab guests run
  # under TCG, each keeping one core busy for most of its test, and the machine has two.
  # Run A: unit, TUI and some lab files that boot a guest of their own; run B: the lab
  # files sharing the package's one guest (tests/lab/conftest.py, its order kept) and
  # the other own-guest files (cxl-replace, numa: B had the lighter load).
  # Balance, 2026-12-07: A 31.4 min / B 26.6 with numa and pstore in A; A 26.9 / B 30.2
  # with both in B; pstore (~1.7 min) went back to A. After the guest reads were batched:
  # A 30.1 / B 33.2, so cxl-capacity (~1.8 min) moved to A.
  # The lab's kernel is fetched once first, so the two runs never unpack it at once.
  own_guest=()
  for f in tests/lab/test_cxl_boot.py tests/lab/test_scenario_cxl.py \
           tests/lab/test_scenario_cxl_poison.py tests/lab/test_scenario_bmc.py \
           tests/lab/test_scenario_pstore.py tests/lab/test_scenario_cxl_capacity.py; do
    [ -e "$f" ] && own_guest+=("$f")
  done
  echo "== lab kernel (fetched once for both runs)"
  .venv/bin/python -c 'from memras.lab.kernel import ensure_guest_agent, ensure_kernel; ensure_kernel(); ensure_guest_agent()' \
    || echo "!! could not fetch the lab kernel now; the lab tests will say why" >&2
  shared_log=$(mktemp)
  echo "== pytest B (lab, shared guest) started beside A; its output follows A's"
  .venv/bin/python -m pytest --durations=30 tests/lab "${own_guest[@]/#/--ignore=}" >"$shared_log" 2>&1 &
  shared_pid=$!
  echo "== pytest A (unit, TUI, lab with a guest of their own)"
  # (the tiers by name: with `tests` and a file inside it pytest collects only the file)
  .venv/bin/python -m pytest --durations=40 tests/unit tests/tui "${own_guest[@]}"
  status=$?
  wait "$shared_pid"
  shared=$?
  echo "== pytest B (lab, shared guest)"
  cat "$shared_log"
  rm -f "$shared_log"
  echo "== pytest: A exited $status, B exited $shared"
  if [ "$status" = 5 ] || [ "$shared" = 5 ]; then
    echo "!! a pytest run collected no tests: that is a failure" >&2
    exit 1
  fi
  [ "$status" = 0 ] && status=$shared
fi
wait "$checks_pid"
cat "$checks/out"
lint=$(cat "$checks/lint" 2>/dev/null || echo 1)
layers=$(cat "$checks/layers" 2>/dev/null || echo 1)
types=$(cat "$checks/types" 2>/dev/null || echo 1)
rm -rf "$checks"
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
