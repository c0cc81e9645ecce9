"""The lab's pure parts, without QEMU: module order from .modinfo, the init script, argv,
the scenario registry and the host's webhook receiver."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, cast

import pytest

from memras.alerts.signing import SIGNATURE_HEADER, sign
from memras.errors import LabError, QemuError
from memras.lab.guest import DimmSpec, Lab, LabConfig, qemu_argv
from memras.lab.initramfs import init_script
from memras.lab.kernel import Kernel, load_order, modinfo, module_name
from memras.lab.scenarios import SCENARIOS, ScenarioReport, run_scenario
from memras.lab.scenarios.webhook_receiver import WebhookReceiver


def _fake_ko(path: Path, info: dict[str, str]) -> Path:
    """A minimal little-endian ELF64 file with a .modinfo and a .shstrtab section."""
    modinfo_bytes = b"".join(f"{k}={v}".encode() + b"\0" for k, v in info.items())
    shstrtab = b"\0.modinfo\0.shstrtab\0"
    data_off = 64
    shstr_off = data_off + len(modinfo_bytes)
    shoff = shstr_off + len(shstrtab)
    header = bytearray(64)
    header[:5] = b"\x7fELF\x02"
    struct.pack_into("<Q", header, 0x28, shoff)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 2)

    def section(name: int, offset: int, size: int) -> bytes:
        return struct.pack("<IIQQQQ", name, 1, 0, 0, offset, size) + bytes(24)

    body = (bytes(header) + modinfo_bytes + shstrtab + bytes(64)
            + section(1, data_off, len(modinfo_bytes)) + section(10, shstr_off, len(shstrtab)))
    path.write_bytes(body)
    return path


def test_modinfo_reads_the_elf_section(tmp_path: Path) -> None:
    ko = _fake_ko(tmp_path / "memory-notifier-error-inject.ko",
                  {"license": "GPL", "depends": "notifier-error-inject", "name": "x"})
    assert modinfo(ko)["depends"] == "notifier-error-inject"
    assert module_name(ko) == "memory_notifier_error_inject"


def test_load_order_puts_dependencies_first_and_rejects_cycles(tmp_path: Path) -> None:
    index = {
        "9p": _fake_ko(tmp_path / "9p.ko", {"depends": "9pnet,fscache,netfs"}),
        "9pnet": _fake_ko(tmp_path / "9pnet.ko", {"depends": ""}),
        "fscache": _fake_ko(tmp_path / "fscache.ko", {"depends": "netfs"}),
        "netfs": _fake_ko(tmp_path / "netfs.ko", {"depends": ""}),
    }
    names = [p.name for p in load_order(["9p", "netfs"], index)]
    assert names == ["9pnet.ko", "netfs.ko", "fscache.ko", "9p.ko"]
    index["netfs"] = _fake_ko(tmp_path / "netfs.ko", {"depends": "9p"})
    with pytest.raises(LabError, match="cycle"):
        load_order(["9p"], index)
    with pytest.raises(LabError, match="not in the kernel package"):
        load_order(["virtio_mem"], index)


def test_init_mounts_the_guests_own_sys_and_keeps_hidden_paths() -> None:
    script = init_script([Path("/tmp/ci checkout")])
    assert "'/tmp/ci checkout'" in script
    assert "mount -t sysfs sys /mnt/sys" in script
    assert "mount -t proc proc /mnt/proc" in script
    # The share is read-only and the guest's own /sys is mounted before the chroot.
    assert "ro,msize" in script
    assert script.index("mount -t sysfs sys /mnt/sys") < script.index("chroot /mnt")
    assert "MEMRAS_LAB_GUEST=1" in script


def test_qemu_argv_shares_root_read_only_and_plugs_dimms(tmp_path: Path) -> None:
    config = LabConfig(dimms=(DimmSpec("dimm0", 512, 0),), virtio_mem_mib=0, keep=())
    argv = qemu_argv("qemu", config, Kernel("6.1.0-1-amd64", tmp_path), tmp_path / "i.gz",
                     "tcg", tmp_path)
    joined = " ".join(argv)
    assert "readonly=on" in joined and "mount_tag=hostroot" in joined
    assert "pc-dimm,id=dimm0,memdev=mem-dimm0,slot=0" in joined
    assert "memory-backend-ram,id=mem-dimm0,size=512M" in joined
    assert "memhp_default_state=online_movable" in joined
    assert "virtio-mem" not in joined
    assert argv[argv.index("-machine") + 1] == "pc,accel=tcg"


def test_importing_the_package_registers_every_scenario() -> None:
    # in a fresh interpreter: in this one the CXL test files (collected with the others)
    # have registered the CXL guest's scenarios too
    out = subprocess.run([sys.executable, "-c", "from memras.lab.scenarios import SCENARIOS; "
                          "print(' '.join(sorted(SCENARIOS)))"],
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == [
        "alerts", "boot-facts", "capacity-policy", "ingest", "ingest-latency", "mce-qemu", "mce-sw",
        "numa-replace", "offline-busy", "parity", "pstore", "rasdaemon", "replace-crash-abort",
        "replace-dimm",
        "replace-fast-swap", "replace-kill-resume", "replace-no-downtime",
        "replace-offline-refused"]


def test_a_qmp_refusal_fails_the_scenario_with_its_step(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    def refused(lab: Lab, report: ScenarioReport) -> None:
        with report.step("device_del"):
            raise QemuError("QMP device_del failed: Device 'dimm9' not found")

    monkeypatch.setitem(SCENARIOS, "qmp-refused", ("test", refused))
    report = run_scenario(cast(Lab, None), "qmp-refused")
    assert not report.ok
    assert report.error == "QMP device_del failed: Device 'dimm9' not found"
    assert [(s.name, s.ok) for s in report.steps] == [("device_del", False)]


def _post(port: int, body: bytes, signature: str | None) -> None:
    headers = {"Content-Type": "application/json", "X-Memras-Schema": "memras.alert/v1"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, headers=headers,
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204


def test_webhook_receiver_checks_the_plugins_signature() -> None:
    body = json.dumps({"schema": "memras.alert/v1", "kind": "page"}).encode()
    receiver = WebhookReceiver("s3cret")
    try:
        _post(receiver.port, body, sign(body, "s3cret"))
        _post(receiver.port, body, sign(body, "other"))
        _post(receiver.port, body, None)
    finally:
        receiver.close()
    deliveries: list[dict[str, Any]] = receiver.deliveries
    assert [d["signed"] for d in deliveries] == [True, False, False]
    assert deliveries[0]["body"]["kind"] == "page"
    assert deliveries[0]["schema_header"] == "memras.alert/v1"
