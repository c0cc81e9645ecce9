"""The CXL lab guest: QEMU 10 and Linux 6.12 from bookworm-backports (unpacked into the
lab cache, the system's QEMU 7.2 and the 6.1 lab untouched), one CXL Type-3 device.
A general media event injected over QMP reaches the guest kernel's cxl_general_media
trace event, and memras's parser reads the line the guest kernel wrote."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from memras.ingest.parsers.ftrace import parse_trace_line
from memras.lab.cxl import CxlLab, inject_general_media
from memras.lab.guest import LabConfig
from memras.records import ErrorType, MemoryErrorEvent
from tests.lab.loud import booted

pytestmark = pytest.mark.lab

TRACING = "/sys/kernel/tracing"


@pytest.fixture(scope="module")
def cxl_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CxlLab]:
    yield from booted(CxlLab(LabConfig(cpus=2, boot_timeout_s=600),
                            state_dir=tmp_path_factory.mktemp("cxl-lab")), "CXL lab guest")


def test_the_guest_runs_612_and_sees_its_cxl_memdev(cxl_lab: CxlLab) -> None:
    assert cxl_lab.check("uname -r").startswith("6.12.")
    memdevs = cxl_lab.check("ls /sys/bus/cxl/devices").split()
    assert "mem0" in memdevs, memdevs
    size = int(cxl_lab.check("cat /sys/bus/cxl/devices/mem0/ram/size"), 16)
    assert size == 256 << 20


def test_an_injected_general_media_event_is_a_trace_line_memras_reads(cxl_lab: CxlLab) -> None:
    cxl_lab.check(f"echo 1 > {TRACING}/events/cxl/cxl_general_media/enable")
    cxl_lab.check(f"echo > {TRACING}/trace")
    inject_general_media(cxl_lab, dpa=0x1000, descriptor=0, type_=0, transaction_type=1,
                         channel=1, rank=0)
    deadline = time.monotonic() + 60
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = [line for line in cxl_lab.check(f"cat {TRACING}/trace").splitlines()
                 if "cxl_general_media:" in line]
        if lines:
            break
        time.sleep(2)
    assert lines, cxl_lab.check("dmesg | tail -20")
    print("\n" + lines[0])
    record = parse_trace_line(lines[0])
    assert isinstance(record, MemoryErrorEvent)
    assert record.error_type is ErrorType.CORRECTED and record.driver == "cxl"
    assert record.location.label == "mem0" and record.location.channel == 1
    assert "dpa=1000 " in record.driver_detail
    Path(cxl_lab.state_dir / "cxl_general_media.txt").write_text(lines[0] + "\n")
