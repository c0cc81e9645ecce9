"""Reusable steps on a booted lab guest: look at memory, offline it, pull and insert DIMMs,
inject machine checks. Scenarios (and other engineers' lab tests) compose these.

Guest-side facts are read inside the guest through its shell, never from the
host's /sys. Host-side actions (device_del, mce) go through QMP.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shlex
import sys
import time
from dataclasses import dataclass
from typing import Any

from memras.errors import LabError, QemuError
from memras.lab.guest import DimmSpec, Lab, checkout_root
from memras.qemu.qmp import UnplugResult

MEMORY = "/sys/devices/system/memory"
ACPI_DEVICES = "/sys/bus/acpi/devices"
NOTIFIER_ACTIONS = "/sys/kernel/debug/notifier-error-inject/memory/actions"
MCE_INJECT = "/sys/kernel/debug/mce-inject"
TRACING = "/sys/kernel/tracing"

# MCi_STATUS for a corrected memory read error: VAL|EN|MISCV|ADDRV, MCACOD 0x9f.
CE_STATUS = 0x9C0000000000009F
# MCi_MISC: address mode 2 (physical), LSB 12 -> the kernel considers the address usable.
CE_MISC_QEMU = 0x8C
CE_MISC_SW = 0x86


@dataclass(frozen=True)
class AcpiMemoryDevice:
    """A PNP0C80 device as the guest kernel shows it."""

    name: str  # PNP0C80:00
    uid: int  # = QEMU slot
    status: int  # 15 populated, 0 empty
    blocks: tuple[str, ...]  # memory32, … from physical_node* links


@dataclass(frozen=True)
class BlockState:
    name: str
    state: str
    valid_zones: str


def acpi_memory_devices(lab: Lab) -> list[AcpiMemoryDevice]:
    """Every PNP0C80 device with its uid, _STA and linked memory blocks."""
    script = (f"for d in {ACPI_DEVICES}/PNP0C80:*; do "
              "printf '%s %s %s' ${d##*/} $(cat $d/uid) $(cat $d/status); "
              "for l in $d/physical_node*; do [ -e $l ] && printf ' %s' $(basename $(readlink $l));"
              " done; echo; done")
    devices = []
    for line in lab.check(script).splitlines():
        parts = line.split()
        if len(parts) >= 3:
            devices.append(AcpiMemoryDevice(parts[0], int(parts[1], 0), int(parts[2]),
                                            tuple(parts[3:])))
    return devices


def slot_device(lab: Lab, slot: int) -> AcpiMemoryDevice:
    for device in acpi_memory_devices(lab):
        if device.uid == slot:
            return device
    raise LabError(f"the guest has no PNP0C80 device with uid {slot}")


def block_states(lab: Lab, blocks: tuple[str, ...] | list[str]) -> dict[str, BlockState]:
    """State and valid_zones of each named block that exists."""
    names = " ".join(shlex.quote(b) for b in blocks)
    script = (f"for b in {names}; do [ -d {MEMORY}/$b ] && "
              f"echo $b $(cat {MEMORY}/$b/state) $(cat {MEMORY}/$b/valid_zones); done; true")
    states = {}
    for line in lab.check(script).splitlines():
        name, state, *zones = line.split()
        states[name] = BlockState(name, state, " ".join(zones))
    return states


def meminfo_kb(lab: Lab) -> dict[str, int]:
    """/proc/meminfo of the guest, values in kB."""
    values = {}
    for line in lab.check("cat /proc/meminfo").splitlines():
        match = re.match(r"(\w+(?:\(\w+\))?):\s+(\d+)", line)
        if match:
            values[match.group(1)] = int(match.group(2))
    return values


def block_size(lab: Lab) -> int:
    return int(lab.check(f"cat {MEMORY}/block_size_bytes").strip(), 16)


@dataclass(frozen=True)
class OfflineResult:
    ok: bool
    seconds: float
    output: str


def offline_blocks(lab: Lab, blocks: tuple[str, ...], timeout_s: float = 120) -> OfflineResult:
    """``echo offline > state`` for each block in the guest; stops at the first failure."""
    names = " ".join(shlex.quote(b) for b in blocks)
    script = (f"for b in {names}; do timeout {int(timeout_s)} sh -c "
              f"\"/bin/echo offline > {MEMORY}/$b/state\" || {{ echo FAILED $b; exit 1; }}; done")
    started = time.monotonic()
    result = lab.run(f"( {script} )", timeout=timeout_s + 10)
    return OfflineResult(result.ok, time.monotonic() - started, result.output.strip())


def set_offline_notifier_error(lab: Lab, errno_value: int) -> None:
    """Make MEM_GOING_OFFLINE fail with ``errno_value`` (negative, e.g. -16); 0 clears."""
    lab.check(f"echo {errno_value} > {NOTIFIER_ACTIONS}/MEM_GOING_OFFLINE/error")


def wait_blocks_online_movable(lab: Lab, blocks: tuple[str, ...], timeout_s: float = 30
                               ) -> dict[str, BlockState]:
    """Poll until every block exists, is online and its zone is Movable."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = block_states(lab, blocks)
        if len(states) == len(blocks) and all(
                s.state == "online" and s.valid_zones == "Movable" for s in states.values()):
            return states
        if time.monotonic() > deadline:
            raise LabError(f"blocks not online Movable after {timeout_s:.0f} s: {states}")
        time.sleep(0.5)


def replug_dimm(lab: Lab, dimm: DimmSpec) -> float:
    """Put a new DIMM with the same id, backend id, size and slot in the machine."""
    with contextlib.suppress(QemuError):  # the backend may be gone already
        lab.qmp.cmd("object-del", id=dimm.memdev)
    return lab.qmp.plug(dimm.id, dimm.memdev, dimm.size_mib << 20, slot=dimm.slot,
                        node=dimm.node)


def unplug_dimm(lab: Lab, dimm: DimmSpec, timeout_s: float = 30) -> UnplugResult:
    return lab.qmp.unplug(dimm.id, timeout=timeout_s)


# --- machine checks -----------------------------------------------------------------------


def enable_mce_observation(lab: Lab) -> None:
    """Poll MCA banks every second and record ``mce:mce_record`` in the trace buffer."""
    lab.check("for f in /sys/devices/system/machinecheck/machinecheck*/check_interval; do "
              "echo 1 > $f; done; "
              f"echo 1 > {TRACING}/events/mce/mce_record/enable; echo > {TRACING}/trace")


def inject_ce(lab: Lab, addr: int, cpu: int = 0, bank: int = 1) -> None:
    """A corrected memory error at guest physical ``addr``, written by QEMU into an MCA bank.

    Found by the kernel's poller (see :func:`enable_mce_observation`), as on hardware
    without CMCI.
    """
    lab.qmp.inject_mce(cpu, bank, CE_STATUS, 0, addr, CE_MISC_QEMU)


def inject_sw_ce(lab: Lab, addr: int, cpu: int = 0, bank: int = 7) -> None:
    """The same error through the guest's mce-inject module (software, no QEMU involved)."""
    fields = [("flags", "sw"), ("status", f"{CE_STATUS:#x}"), ("addr", f"{addr:#x}"),
              ("misc", f"{CE_MISC_SW:#x}"), ("cpu", str(cpu)), ("bank", str(bank))]
    lab.check("; ".join(f"echo {v} > {MCE_INJECT}/{k}" for k, v in fields))


def wait_guest_output(lab: Lab, command: str, pattern: str, timeout_s: float = 20) -> str:
    """Rerun ``command`` in the guest until its output matches ``pattern``; the match line."""
    regex = re.compile(pattern, re.M)
    deadline = time.monotonic() + timeout_s
    while True:
        output = lab.run(command).output
        match = regex.search(output)
        if match:
            line_start = output.rfind("\n", 0, match.start()) + 1
            line_end = output.find("\n", match.end())
            return output[line_start:line_end if line_end >= 0 else None]
        if time.monotonic() > deadline:
            raise LabError(f"no output matching {pattern!r} from {command!r} "
                           f"within {timeout_s:.0f} s")
        time.sleep(0.5)


def mce_trace_line(lab: Lab, addr: int, timeout_s: float = 20) -> str:
    """The ``mce_record`` trace line for ``addr``."""
    return wait_guest_output(lab, f"cat {TRACING}/trace",
                             rf"mce_record: .*ADDR/MISC/SYND: {addr:016x}/", timeout_s)


def mce_dmesg_line(lab: Lab, addr: int, timeout_s: float = 20) -> str:
    """The kernel's ``[Hardware Error] … ADDR <addr>`` line."""
    return wait_guest_output(lab, "dmesg", rf"Hardware Error\].*ADDR {addr:x} ", timeout_s)


def mce_dmesg_count(lab: Lab, addr: int) -> int:
    """How many ``[Hardware Error] … ADDR <addr>`` lines the guest's kernel ring holds."""
    out = lab.run(f"dmesg | grep -F 'Hardware Error]' | grep -c -F 'ADDR {addr:x} '").output
    digits = out.strip().splitlines()[-1:] or ["0"]
    return int(digits[0]) if digits[0].isdigit() else 0


def inject_ce_logged(lab: Lab, addr: int, *, timeout_s: float = 20,
                     then_sleep_s: float = 0.0) -> int:
    """Inject a QEMU CE at ``addr`` and wait until the kernel logged THIS injection.

    :func:`mce_dmesg_line` returns at once when an earlier line for the same address is
    still in the ring (a shared guest, a rerun); here the number of lines must grow, so
    the poller has really emptied the bank before the caller injects the next error (a
    second injection before that overwrites the first). ``then_sleep_s`` then sleeps IN
    THE GUEST, so the next error is logged at least that many kernel seconds later.
    Returns the number of lines for ``addr`` now; raises LabError after ``timeout_s``.
    """
    before = mce_dmesg_count(lab, addr)
    inject_ce(lab, addr)
    deadline = time.monotonic() + timeout_s
    while (now := mce_dmesg_count(lab, addr)) <= before:
        if time.monotonic() > deadline:
            raise LabError(f"the guest kernel did not log the CE at {addr:#x} within "
                           f"{timeout_s:.0f} s (poller off? see enable_mce_observation)")
        time.sleep(0.3)
    if then_sleep_s > 0:
        lab.check(f"sleep {then_sleep_s:g}")
    return now


# --- memras inside the guest (scenarios b, c, f) ------------------------------------------

HWPOISON = "/sys/kernel/debug/hwpoison"
# MCi_STATUS of an SRAO (software recoverable, action optional) memory scrub error, and
# the MCG_STATUS (RIPV|MCIP) QEMU needs to deliver it as a broadcast #MC.
SRAO_STATUS = 0xBD000000000000C0
SRAO_MCG_STATUS = 0x5


def memras_argv() -> str:
    """The memras this process runs, as the guest shell runs it: this interpreter with
    this memras's import root first on its path (a checkout, or the site-packages of a
    pip or pipx install). Both are kept visible in the guest (``LabConfig.keep``), so
    the guest runs the same code however memras was installed, not a checkout's venv
    that a pipx user does not have."""
    return f"{memras_python()} -m memras"


def memras_python() -> str:
    """This interpreter with this memras's import root first on its path, as the guest
    shell runs it (:func:`memras_argv` without the ``-m memras``)."""
    return f"PYTHONPATH={shlex.quote(str(checkout_root()))} {python_argv()}"


def python_argv() -> str:
    """The interpreter this process runs (a venv's python, kept as its venv path so the
    venv's site-packages come with it), as the guest shell runs it."""
    return shlex.quote(sys.executable or "python3")


def start_guest_watch(lab: Lab, db: str, log: str, *, sources: str = "kmsg,trace",
                      config: str | None = None, extra: str = "") -> None:
    """``memras watch`` in the guest's background; returns once its trace instance exists.

    ``--once`` is not used: the scenarios need the long-running watcher's latency and
    its cross-source deduplication, and stop it with SIGTERM (:func:`stop_guest_watch`).
    """
    cfg = f"--config {shlex.quote(config)} " if config else ""
    lab.check(f"rm -f {db}* {log}; ( PYTHONUNBUFFERED=1 {memras_argv()} --db {db} {cfg}watch "
              f"--sources {sources} {extra} > {log} 2>&1 & echo $! > {log}.pid )")
    # Wait for this watcher's own start line (printed once its database is open and its
    # sources are built). The trace instance is no sign: it outlives a watcher on purpose
    # (unread events stay buffered for the next one), so in a shared guest it already
    # exists and the scenario would signal a watcher that is still importing. Its start
    # takes ~60 s under TCG on an idle host and passed 120 s on a busy one.
    wait_guest_output(lab, f"cat {log}", r"^memras watch: sources|Traceback|[Ee]rror",
                      timeout_s=240)
    output = lab.check(f"cat {log}; kill -0 $(cat {log}.pid) && echo WATCH-RUNNING")
    if "WATCH-RUNNING" not in output:
        raise LabError(f"memras watch exited in the guest: {output.strip()[-400:]}")


def stop_guest_watch(lab: Lab, log: str, timeout_s: float = 30) -> str:
    """SIGTERM the guest's watcher, wait for it to exit; its output (the per-source table)."""
    lab.check(f"kill -TERM $(cat {log}.pid)")
    wait_guest_output(lab, f"kill -0 $(cat {log}.pid) 2>/dev/null && echo running || echo gone",
                      r"^gone", timeout_s)
    return lab.check(f"cat {log}")


def guest_memras_json(lab: Lab, args: str, timeout_s: float = 120) -> object:
    """``memras --json ARGS`` in the guest, parsed (one invocation costs ~10-15 s under TCG)."""
    return json.loads(lab.check(f"{memras_argv()} --json {args}", timeout=timeout_s))


def guest_memras_json_many(lab: Lab, commands: list[str], workdir: str,
                           timeout_s: float = 600) -> list[Any]:
    """``memras --json C`` for each of ``commands`` in one guest Python, parsed; each
    must exit 0 (see :func:`guest_memras_batch`)."""
    outcomes = guest_memras_batch(lab, [f"--json {c}" for c in commands], workdir,
                                  timeout_s=timeout_s)
    return [o.json(c) for c, o in zip(commands, outcomes, strict=True)]


@dataclass(frozen=True)
class CliOutcome:
    """One command line's result in a :func:`guest_memras_batch`."""

    status: int
    out: str
    err: str

    def json(self, what: str, ok: bool = True) -> Any:
        """The parsed stdout; ``ok``: the command must have exited 0."""
        if ok and self.status != 0:
            raise LabError(f"memras {what} exited {self.status}: "
                           f"{(self.err or self.out).strip()[-400:]}")
        try:
            return json.loads(self.out)
        except ValueError:
            raise LabError(f"memras {what} printed no JSON (exit {self.status}): "
                           f"{(self.out + self.err).strip()[-400:]}") from None


def guest_memras_batch(lab: Lab, commands: list[str], workdir: str, *, env: str = "",
                       timeout_s: float = 600) -> list[CliOutcome]:
    """Several ``memras`` command lines in ONE guest Python (memras/cli/batch.py):
    each runs through the CLI's own ``main`` with its own stdout, stderr and status, so
    only the 20-40 s TCG start-up is shared. ``commands`` are argument strings (shell
    words), run in order; a failing one does not stop the next."""
    batch = f"{workdir}/cli-batch"
    lab.check(f"rm -rf {batch}; mkdir -p {batch}")
    write_guest_file(lab, f"{batch}/spec.json",
                     json.dumps([shlex.split(c) for c in commands]))
    lab.check(f"{env} {memras_python()} -m memras.cli.batch {batch}/spec.json {batch}",
              timeout=timeout_s)
    outcomes = []
    for i in range(len(commands)):
        status = lab.check(f"cat {batch}/{i}.status").strip()
        outcomes.append(CliOutcome(int(status), lab.run(f"cat {batch}/{i}.out").output,
                                   lab.run(f"cat {batch}/{i}.err").output))
    return outcomes


def inject_srao(lab: Lab, addr: int, cpu: int = 0, bank: int = 9) -> None:
    """QEMU ``mce -b``: an action-optional UCR error at ``addr``; the kernel's
    memory_failure() poisons the page (``Memory failure: 0x…: … Recovered``)."""
    lab.qmp.inject_mce(cpu, bank, SRAO_STATUS, SRAO_MCG_STATUS, addr, CE_MISC_QEMU,
                       broadcast=True)


def unpoison_pfn(lab: Lab, pfn: int) -> bool:
    """hwpoison_inject's ``unpoison-pfn``: try to give a poisoned/soft-offlined page back.

    Best effort: after a memory_failure() from a real (here: QEMU-injected) machine
    check, 6.1 refuses every unpoison for the rest of the boot (EIO). The page then
    stays poisoned; offlining its block still works (hwpoisoned pages are skipped).
    """
    return lab.run(f"echo {pfn:#x} > {HWPOISON}/unpoison-pfn").ok


# A twin of memras's trace instance (same Tracefs.setup: buffer_percent=0, the RAS events)
# read by memras's own TracePipeReader, stamping each line with its arrival time. The
# watcher's instance cannot be shared (trace_pipe reads consume), so this is how a
# scenario measures what the watcher sees: how soon a single event leaves the buffer.
_TRACE_PROBE = """
import sys, time
from memras.host._fs import KernelFs
from memras.host.tracefs import Tracefs
tracefs = Tracefs(KernelFs("/", allow_real_writes=True))
reader = tracefs.open_pipe(tracefs.setup(name="memras-latency"))
out = open(sys.argv[1], "a", buffering=1)
out.write("ready\\n")
while True:
    for line in reader.read_lines(1.0):
        out.write(f"{time.time():.6f} {line}\\n")
"""


def start_trace_probe(lab: Lab, log: str) -> None:
    """Start the arrival-time probe (see ``_TRACE_PROBE``) in the guest's background."""
    write_guest_file(lab, f"{log}.py", _TRACE_PROBE)
    lab.check(f"rm -f {log}; ( {python_argv()} {log}.py {log} & echo $! > {log}.pid )")
    wait_guest_output(lab, f"cat {log}", r"^ready", timeout_s=60)


def stop_trace_probe(lab: Lab, log: str) -> None:
    lab.run(f"kill $(cat {log}.pid); sleep 0.5; rmdir {TRACING}/instances/memras-latency")


def write_guest_file(lab: Lab, path: str, text: str, mode: int = 0o644) -> None:
    """Create a guest file in one console line (base64: no quoting or heredoc prompts)."""
    data = base64.b64encode(text.encode()).decode()
    lab.check(f"echo {data} | base64 -d > {path} && chmod {mode:o} {path}")


def guest_time(lab: Lab) -> float:
    return float(lab.check("date +%s.%N").strip())


def probe_arrival(lab: Lab, log: str, addr: int, timeout_s: float = 20) -> float:
    """Wall time (guest clock) at which the probe read the mce_record for ``addr``."""
    line = wait_guest_output(lab, f"cat {log}", rf"mce_record: .*ADDR/MISC/SYND: {addr:016x}/",
                             timeout_s)
    return float(line.split()[0])


def guest_sql(lab: Lab, db: str, query: str) -> list[list[str]]:
    """Rows of a query on a guest SQLite file, through the sqlite3 CLI (tab-separated)."""
    out = lab.check(f"sqlite3 -separator '\t' {shlex.quote(db)} {shlex.quote(query)}")
    return [line.split("\t") for line in out.splitlines() if line]


# --- kernel-to-stored latency (scenario ingest-latency) -----------------------------------

LATENCY_PROBE = "memras/lab/latency_probe.py"  # standard library only, run from the share


def latency_probe(lab: Lab, args: str, timeout_s: float = 120) -> str:
    """``latency_probe.py ARGS`` in the guest (inject, summary); its output."""
    script = shlex.quote(str(checkout_root() / LATENCY_PROBE))
    return lab.check(f"{python_argv()} {script} {args}", timeout=timeout_s)


def start_commit_poller(lab: Lab, db: str, log: str) -> None:
    """The probe's ``poll`` in the guest's background: when each new row became visible."""
    script = shlex.quote(str(checkout_root() / LATENCY_PROBE))
    lab.check(f"rm -f {log}; ( {python_argv()} {script} poll --db {db} --out {log} "
              f"& echo $! > {log}.pid )")
    wait_guest_output(lab, f"cat {log}", r"^ready", timeout_s=60)


def stop_commit_poller(lab: Lab, log: str, timeout_s: float = 30) -> None:
    lab.run(f"kill -TERM $(cat {log}.pid)")
    wait_guest_output(lab, f"kill -0 $(cat {log}.pid) 2>/dev/null && echo running || echo gone",
                      r"^gone", timeout_s)


def start_trace_counter(lab: Lab, name: str, buffer_kb: int) -> str:
    """A trace instance recording every ``mce_record`` that nobody reads: how many records
    the kernel logged (``per_cpu/*/stats`` entries). Its path."""
    path = f"{TRACING}/instances/{name}"
    lab.check(f"mkdir -p {path} && echo {buffer_kb} > {path}/buffer_size_kb && "
              f"echo 1 > {path}/events/mce/mce_record/enable")
    return path


def trace_instance_entries(lab: Lab, path: str) -> int:
    """Events a trace instance holds unread (``entries`` of per_cpu/*/stats, summed)."""
    out = lab.check(f"cat {path}/per_cpu/cpu*/stats | awk '/^entries:/ {{n += $2}} "
                    "END {print n + 0}'")
    return int(out.strip() or 0)


def stop_trace_counter(lab: Lab, path: str) -> None:
    lab.run(f"echo 0 > {path}/events/mce/mce_record/enable; rmdir {path}")
