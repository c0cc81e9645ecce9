"""Reusable steps on a booted lab guest: look at memory, offline it, pull and insert DIMMs,
inject machine checks. Scenarios (and other engineers' lab tests) compose these.

Guest-side facts are read inside the guest through its shell, never from the
host's /sys. Host-side actions (device_del, mce) go through QMP.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import time
from dataclasses import dataclass

from memras.errors import LabError
from memras.lab.guest import DimmSpec, Lab
from memras.lab.qmp import UnplugResult

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
    with contextlib.suppress(LabError):  # the backend may be gone already
        lab.qmp.cmd("object-del", id=dimm.memdev)
    return lab.qmp.plug(dimm.id, dimm.memdev, dimm.size_mib << 20, slot=dimm.slot)


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
