"""The BMC in-band, on a real kernel: a guest's ipmi_si/ipmi_devintf and Debian's ipmitool
reach OpenIPMI's ipmi_sim through QEMU's ``ipmi-bmc-extern`` (issue 18, Checks).

A small guest of its own (512 MiB, 1 CPU, no DIMMs) gets ``-device isa-ipmi-kcs`` backed
by ``ipmi-bmc-extern`` on a chardev to the host's ipmi_sim (lan.conf ``serial 15 … codec
VM``); QEMU describes the KCS interface to the guest (SMBIOS type 38 / ACPI), the guest's
ipmi_si binds it and ipmi_devintf makes /dev/ipmi0. Inside the guest, memras with
``[bmc] interface = "open"``:

1. ``memras led on`` / ``off``: the host's sim sees Chassis Identify force, then 0;
2. the sim's ``sel_add`` puts a UE and a device-disabled record in the SEL; ``memras
   watch --once`` in the guest (the ``bmc`` source, since [bmc] is set) stores them;
3. Redfish from the guest: sushy-emulator (Memory resources added, as in the unit
   tests) runs on the host and the guest reaches it at 10.0.2.100:8000 (the lab's
   guestfwd relay); ``memras led on|off P1-DIMMB1`` PATCHes the slot's
   LocationIndicatorActive, which the emulator records and reads back.

The guest is booted and shut down by this module only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from memras.errors import LabError
from memras.lab.actions import guest_memras_batch
from memras.lab.guest import Lab, LabConfig
from tests.fixtures.ipmi_sim import (
    DEVICE_DISABLED,
    UNCORRECTABLE_ECC,
    IpmiSim,
    free_port,
    start_ipmi_sim,
)
from tests.fixtures.redfish_emulator import PASSWORD as RF_PASSWORD
from tests.fixtures.redfish_emulator import USER as RF_USER
from tests.fixtures.redfish_emulator import RedfishEmulator, start_emulator
from tests.lab.loud import lab_unavailable

pytestmark = pytest.mark.lab
BATCH = "/tmp/memras-bmc-cli"  # memras command lines run together (guest_memras_batch)
CONF = "/tmp/memras-bmc.toml"
DB = "/tmp/memras-bmc.db"
RF_CONF, RF_PASS, RF_GUEST_PORT = "/tmp/memras-rf.toml", "/tmp/memras-rf.pass", 8000


@pytest.fixture(scope="module")
def bmc_guest(tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[Lab, IpmiSim, RedfishEmulator]]:
    vm_port = free_port()
    sim = start_ipmi_sim(tmp_path_factory.mktemp("bmc-sim"), vm_port=vm_port)
    emu = start_emulator(tmp_path_factory.mktemp("bmc-redfish"))
    emu_port = int(emu.url.rsplit(":", 1)[1])
    config = LabConfig(
        name="memras-lab-bmc", boot_mib=512, slots=1, maxmem_mib=1024, cpus=1, dimms=(),
        virtio_mem_mib=0, forwards=((RF_GUEST_PORT, emu_port),), guest_qmp=False,
        qemu_extra=("-chardev", f"socket,id=ipmi0,host=127.0.0.1,port={vm_port},"
                                "reconnect=10",
                    "-device", "ipmi-bmc-extern,id=bmc0,chardev=ipmi0",
                    "-device", "isa-ipmi-kcs,bmc=bmc0"),
        extra_modules=("ipmi_si", "ipmi_devintf"))
    guest = Lab(config, state_dir=tmp_path_factory.mktemp("bmc-state"))
    try:
        try:
            guest.boot()
        except LabError as exc:
            if "apt-get" in f"{exc.msg} {exc.hint or ''}":
                lab_unavailable(f"the BMC guest cannot boot: {exc.msg} ({exc.hint})")
            raise
        guest.check(f"printf '[bmc]\\nkind = \"ipmi\"\\ninterface = \"open\"\\n"
                    f"sel_interval = \"5s\"\\n' > {CONF}")
        guest.check(f"umask 077; printf '%s\\n' '{RF_PASSWORD}' > {RF_PASS}")
        guest.check(f"printf '[bmc]\\nkind = \"redfish\"\\n"
                    f"address = \"http://10.0.2.100:{RF_GUEST_PORT}\"\\n"
                    f"user = \"{RF_USER}\"\\npassword_file = \"{RF_PASS}\"\\n"
                    f"timeout = \"60s\"\\n' > {RF_CONF}")
        yield guest, sim, emu
    finally:
        guest.shutdown()
        sim.proc.terminate()
        emu.proc.terminate()


def _wait_device(guest: Lab, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        out = guest.run("ls /dev/ipmi0 && cat /proc/ipmi/0/type 2>/dev/null")
        if out.ok or time.monotonic() > deadline:
            return out.output
        time.sleep(1)


def test_in_band_identify_reaches_the_bmc(
        bmc_guest: tuple[Lab, IpmiSim, RedfishEmulator]) -> None:
    guest, sim, _ = bmc_guest
    found = _wait_device(guest)
    assert "/dev/ipmi0" in found, found + guest.run("dmesg | grep -i ipmi").output
    before = len(sim.chassis_calls())
    # on and off in one guest Python (each CLI start-up is ~25 s of TCG)
    on, off = guest_memras_batch(guest, [f"--config {CONF} led on --json",
                                         f"--config {CONF} led off"], BATCH, timeout_s=300)
    result = on.json("led on")
    assert (result["ok"], result["kind"], result["data"]["argv"][:3]) == \
        (True, "ipmi", ["ipmitool", "-I", "open"])
    assert off.status == 0, off
    assert sim.chassis_calls()[before:] == ["set identify 0 1", "set identify 0 0"]


def test_the_sel_reaches_the_guests_store(
        bmc_guest: tuple[Lab, IpmiSim, RedfishEmulator]) -> None:
    guest, sim, _ = bmc_guest
    _wait_device(guest)
    sim.sel_add_memory(UNCORRECTABLE_ECC, sensor=0x05)
    sim.sel_add_memory(DEVICE_DISABLED, sensor=0x05)
    raw = guest.check("ipmitool -I open sel elist", timeout=120)
    assert "Memory #0x05 | Uncorrectable ECC | Asserted" in raw, raw
    watched, listed = guest_memras_batch(
        guest, [f"--config {CONF} --db {DB} watch --once --sources edac",
                f"--db {DB} errors --json"], BATCH, timeout_s=480)
    assert watched.status == 0, watched
    out = listed.out
    rows = listed.json("errors")
    bmc = sorted((r["type"], r["message"]) for r in rows if r["source"] == "bmc")
    assert bmc == [("Uncorrected", "memory device disabled (SEL)"),
                   ("Uncorrected", "uncorrectable ECC (SEL)")], out


def test_redfish_from_the_guest_lights_the_slot(
        bmc_guest: tuple[Lab, IpmiSim, RedfishEmulator]) -> None:
    guest, _, emu = bmc_guest
    before = len(emu.patches())
    on, off = guest_memras_batch(guest, [f"--config {RF_CONF} led on P1-DIMMB1 --json",
                                         f"--config {RF_CONF} led off P1-DIMMB1"], BATCH,
                                 timeout_s=480)
    result = on.json("led on")
    assert (result["ok"], result["kind"], result["slot"]) == (True, "redfish", "P1-DIMMB1")
    assert result["data"]["read_back"] is True and RF_PASSWORD not in on.out + on.err
    assert off.status == 0, off
    assert [p["body"] for p in emu.patches()[before:]] == [
        {"LocationIndicatorActive": True}, {"LocationIndicatorActive": False}]
