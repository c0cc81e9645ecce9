"""Errors from before this boot, placed in a simulated root (``sim inject --before-boot``).

``bert``: an ACPI BERT table and its Boot Error Region with one fatal CPER memory
section per call (layouts of memras.host.bert: ``acpi_table_bert``, a Generic Error
Status Block, a v3 Generic Error Data Entry, ``cper_sec_mem_err``), as firmware leaves
them after an uncorrectable error reset the machine. ``pstore``: a ramoops dump of the
previous kernel — the EDAC line of the uncorrected error and the panic — written as
``/sys/fs/pstore/dmesg-ramoops-N``, file time a minute ago.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from memras.host.bert import (
    ACPI_HEADER,
    BERT_TABLE,
    DATA_ENTRY,
    DATA_ENTRY_TIMESTAMP,
    MEM_VALID_COLUMN,
    MEM_VALID_ERROR_TYPE,
    MEM_VALID_NODE,
    MEM_VALID_PA,
    MEM_VALID_PA_MASK,
    MEM_VALID_RANK_NUMBER,
    MEM_VALID_ROW,
    MEMORY_ERROR_GUID,
    MEMORY_SECTION,
    REGION_FILE,
    STATUS_BLOCK,
    TABLE_FILE,
)
from memras.host.pstore import PSTORE_DIR

CPER_SEV_FATAL = 1
MULTI_BIT_ECC = 3
GEN_VALID_FRU_STRING = 0x2


def memory_error_block(address: int, *, socket: int, rank: int, row: int, column: int,
                       fru_text: str, severity: int = CPER_SEV_FATAL) -> bytes:
    """One Generic Error Status Block holding one CPER memory error section."""
    valid = (MEM_VALID_PA | MEM_VALID_PA_MASK | MEM_VALID_NODE | MEM_VALID_RANK_NUMBER
             | MEM_VALID_ROW | MEM_VALID_COLUMN | MEM_VALID_ERROR_TYPE)
    section = MEMORY_SECTION.pack(valid, 0x400, address, (1 << 64) - 64, socket, 0, 0, 0, 0,
                                  row & 0xFFFF, column, 0, 0, 0, 0, MULTI_BIT_ECC, 0, rank,
                                  0, 0)
    entry = DATA_ENTRY.pack(MEMORY_ERROR_GUID.bytes_le, severity, 0x0300,
                            GEN_VALID_FRU_STRING, 0, len(section), bytes(16),
                            fru_text.encode("ascii", "replace")[:20])
    entry += DATA_ENTRY_TIMESTAMP.pack(0) + section
    return STATUS_BLOCK.pack(0x1 | 1 << 4, 0, 0, len(entry), severity) + entry


def add_bert_block(root: Path, block: bytes) -> int:
    """Append ``block`` to the root's Boot Error Region (creating table and region);
    returns the region's new length."""
    region_path = root / REGION_FILE.lstrip("/")
    region = region_path.read_bytes() if region_path.exists() else b""
    region += block
    region_path.parent.mkdir(parents=True, exist_ok=True)
    region_path.write_bytes(region)
    header = ACPI_HEADER.pack(b"BERT", ACPI_HEADER.size + BERT_TABLE.size, 1, 0, b"MEMRAS",
                              b"SIMBERT ", 1, b"MRAS", 1)
    table = header + BERT_TABLE.pack(len(region), 0x7FFE0000)
    (root / TABLE_FILE.lstrip("/")).write_bytes(table)
    return len(region)


def add_pstore_dump(root: Path, lines: list[str], *, uptime_s: float = 812.3,
                    written: float | None = None) -> Path:
    """A ramoops dmesg dump of the previous kernel: ``lines`` (kernel messages) as
    ``<level>[uptime] text``, the last at ``uptime_s``; file time ``written``."""
    directory = root / PSTORE_DIR.lstrip("/")
    directory.mkdir(parents=True, exist_ok=True)
    n = sum(1 for p in directory.iterdir() if p.name.startswith("dmesg-ramoops-"))
    start = uptime_s - 0.001 * (len(lines) - 1)
    body = [f"<0>[{start + 0.001 * i:12.6f}] {line}" for i, line in enumerate(lines)]
    path = directory / f"dmesg-ramoops-{n}"
    path.write_text(f"Panic#{n + 1} Part1\n" + "\n".join(body) + "\n")
    stamp = time.time() - 60 if written is None else written
    os.utime(path, (stamp, stamp))
    return path


def inject_before_boot(root: str | Path, dimm: str, where: str, address: int | None = None
                       ) -> int:
    """An uncorrected error on ``dimm`` that reset the simulated machine, as the next
    boot finds it: ``where`` is ``bert`` (the firmware's record) or ``pstore`` (the
    previous kernel's last log). Returns the physical address used."""
    from memras.errors import UsageError
    from memras.sim.actions import _Cell, _edac_text, _pick_address
    from memras.sim.state import locked_state

    root = Path(root)
    with locked_state(root) as state:
        try:
            d = state.spec.dimm(dimm)
        except KeyError:
            raise UsageError(f"no DIMM {dimm!r} in this simulated server", hint="names: "
                             + ", ".join(x.name for x in state.spec.dimms)) from None
        rng = state.rng()
        if address is None:
            address = _pick_address(root, state.spec, d, rng.randrange(1 << 20))
        elif not d.serves(address):
            raise UsageError(f"address {address:#x} is not on {d.name}",
                             hint="omit the address to let the simulator pick one")
        row, column = rng.randrange(0x10000), rng.randrange(0x400) & ~7
        if where == "bert":
            add_bert_block(root, memory_error_block(address, socket=d.socket, rank=0,
                                                    row=row, column=column, fru_text=d.name))
            return address
        lines: list[str] = []
        if d.mc is not None:
            driver = next(m.driver for m in state.spec.mcs if m.index == d.mc)
            lines.append(_edac_text(driver, d, address, _Cell(row, column, 0, 0), 1, True,
                                    state.spec.edac_grain)[0])
        lines += ["mce: [Hardware Error]: CPU 0: Machine Check Exception: 5 Bank 7: "
                  "be00000000800090",
                  f"mce: [Hardware Error]: TSC 0 ADDR {address:x} MISC 8c",
                  "mce: [Hardware Error]: Machine check: Processor context corrupt",
                  "Kernel panic - not syncing: Fatal machine check"]
        add_pstore_dump(root, lines)
        return address
