"""The public real-log corpus: one TOML file per log under ``tests/corpus/real/``.

Each file is one log a reader can open at its ``url`` (a bug tracker, mailing-list
archive or forum address), copied verbatim, with the error records a RAS engineer
reads in it. The expected records are what the LOG SAYS, not what memras's parser
outputs today; an entry the parser gets wrong keeps its true expectations and says so
in ``known_gap`` (tests/unit/parsers/test_real_corpus.py keeps the marker honest).

File format (TOML; ``text`` is a literal multi-line string, so nothing is escaped)::

    id = "ghes-user-access-…"          # the file name without .toml
    url = "https://lore.kernel.org/…"   # a public address a reader can open
    source = "who, where, when; what was edited (e.g. quote markers removed)"
    kind = "dmesg"                      # the importer: dmesg | trace | mcelog | ras-mc-ctl
    arch = "x86_64"                     # x86_64 | arm64 | ppc64le
    page_size = 4096                    # optional: the kernel's page size when known
    families = ["ghes", "page-action"]  # what the log exercises (FAMILIES below)
    known_gap = "…"                     # optional: why today's parser gets it wrong
    text = '''
    …the log, verbatim…
    '''
    decoys = ["a line of text that must produce no record", …]

    [[expected]]                        # one table per error record the log holds
    record = "error"                    # error (default) | memory_failure
    error_type = "CE"                   # CE | UE (any uncorrected grade) | Corrected |
                                        # Uncorrected | Deferred | Fatal | Info
    time = "[  183.645940]"             # as printed (see check.time_rule); or a list
    address = 0x8a398a400
    label = "NODE 4 CPU1_DIMM_A1"       # … and the other DIMM location fields stated
    absent = ["normalized_address"]     # fields the record must NOT carry

One record per FAULT: the EDAC line, its driver's register lines, the core's MCE print,
a GHES block and ghes_edac's echo of it are one record; so are the sections of one
CPER block that name the same address. ``Memory failure:`` page actions are records
of their own (``record = "memory_failure"``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REAL_DIR = Path(__file__).parent / "real"

KINDS = ("dmesg", "trace", "mcelog", "ras-mc-ctl")
ARCHES = ("x86_64", "arm64", "ppc64le")

# What a log exercises; the bench reports recall per family.
FAMILIES: dict[str, str] = {
    "prefix-syslog": "syslog/journal prefixes: day padding, host-only, no host",
    "prefix-dmesg": "dmesg prefixes: uptime, -T wall clock, ISO, caller ids",
    "prefix-stacked": "two stamps on one line (wall clock + uptime, ISO + uptime)",
    "prefix-console": "serial/netconsole/kmsg console stamps",
    "edac-modern": "EDAC MC lines of the 3.5+ format (sb_edac, skx, i10nm, amd64, ghes_edac)",
    "edac-old": "older EDAC forms: pre-3.5 lines, e7xxx/e752x/i5000/i5400/i7300/i7core…",
    "mce-core": "machine checks printed by the x86 core (fatal, user-access, print_all)",
    "mce-amd": "AMD mce_amd blocks, legacy and SMCA, with or without amd64_edac",
    "ghes": "firmware-first APEI GHES / CPER blocks",
    "arm64": "arm64 logs (GHES, 64 KiB pages)",
    "cxl": "CXL memory device events (trace, or printed to the log with tp_printk)",
    "page-action": "memory_failure / soft offline / process kills",
    "trace": "tracefs mc_event / mce_record / memory_failure_event lines",
    "mcelog": "mcelog text records",
    "ras-mc-ctl": "ras-mc-ctl --errors rows",
    "decoy": "lines that look like memory errors and are not",
}

LOCATION_KEYS = (
    "socket", "mc", "channel", "slot", "csrow", "rank", "bank_group", "bank", "row",
    "column", "device", "label", "top_layer", "middle_layer", "lower_layer",
)  # fmt: skip
ERROR_KEYS = (
    "error_type", "count", "address", "normalized_address", "page", "page_shift",
    "grain_bits", "syndrome", "message", "driver", "driver_detail", "kmsg_seq",
    "raw_lines", *LOCATION_KEYS,
)  # fmt: skip
FAILURE_KEYS = ("pfn", "page_type", "action_result", "kmsg_seq", "raw_lines")
MCE_KEYS = (
    "status", "bank", "addr", "misc", "mcgcap", "mcgstatus", "ip", "tsc", "walltime", "cpu",
    "cpuid", "apicid", "socketid", "cs", "cpuvendor", "ipid", "synd", "ppin", "microcode",
)  # fmt: skip
ERROR_TYPES = ("CE", "UE", "Corrected", "Uncorrected", "Deferred", "Fatal", "Info")
RECORDS = ("error", "memory_failure")
_TOP_KEYS = {"id", "url", "source", "kind", "arch", "page_size", "families", "known_gap", "year",
             "text", "decoys", "expected"}  # fmt: skip


class CorpusError(ValueError):
    """A corpus file that breaks the format (named, with what is wrong)."""


@dataclass(frozen=True, slots=True)
class Expected:
    """One error record a log holds, as its text states it."""

    record: str  # "error" | "memory_failure"
    fields: dict[str, Any]  # ERROR_KEYS / FAILURE_KEYS that the text states
    mce: dict[str, int]  # machine-check registers the text prints
    time: tuple[str, ...]  # the record's time stamp(s), as printed
    absent: tuple[str, ...]  # fields the record must not carry (None)


@dataclass(frozen=True, slots=True)
class CorpusLog:
    id: str
    url: str
    source: str
    kind: str
    arch: str
    page_size: int | None
    families: tuple[str, ...]
    text: str
    expected: tuple[Expected, ...]
    decoys: tuple[str, ...]
    known_gap: str | None
    path: Path
    # The year a year-less syslog was written, where the source dates it: what an
    # operator passes as `memras import --year` (None: the file's mtime decides)
    year: int | None = None

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


def _fail(path: Path, what: str) -> CorpusError:
    return CorpusError(f"{path.name}: {what}")


def _expected(path: Path, n: int, table: dict[str, Any]) -> Expected:
    table = dict(table)
    record = table.pop("record", "error")
    if record not in RECORDS:
        raise _fail(path, f"expected[{n}]: record must be one of {RECORDS}, not {record!r}")
    mce = table.pop("mce", {})
    time = table.pop("time", ())
    time = (time,) if isinstance(time, str) else tuple(time)
    absent = tuple(table.pop("absent", ()))
    allowed = ERROR_KEYS if record == "error" else FAILURE_KEYS
    unknown = set(table) - set(allowed)
    if unknown:
        raise _fail(path, f"expected[{n}]: unknown keys {sorted(unknown)}")
    if set(mce) - set(MCE_KEYS) or (mce and record != "error"):
        raise _fail(path, f"expected[{n}]: bad mce keys {sorted(mce)}")
    bad_absent = set(absent) - set(allowed) - {"mce", "timestamp", "uptime"}
    if bad_absent:
        raise _fail(path, f"expected[{n}]: unknown absent fields {sorted(bad_absent)}")
    if record == "error" and table.get("error_type") not in ERROR_TYPES:
        raise _fail(path, f"expected[{n}]: error_type must be one of {ERROR_TYPES}")
    if record == "memory_failure" and "pfn" not in table:
        raise _fail(path, f"expected[{n}]: a memory_failure states its pfn")
    return Expected(record=record, fields=table, mce=dict(mce), time=time, absent=absent)


def load(path: Path) -> CorpusLog:
    """One corpus file, checked against the format above."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise _fail(path, f"cannot read: {exc}") from exc
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _fail(path, f"unknown keys {sorted(unknown)}")
    for key in ("id", "url", "source", "kind", "arch", "families", "text"):
        if key not in data:
            raise _fail(path, f"missing {key!r}")
    if data["id"] != path.stem:
        raise _fail(path, f"id {data['id']!r} is not the file name")
    if not str(data["url"]).startswith("https://"):
        raise _fail(path, "url must be a public https address a reader can open")
    if data["kind"] not in KINDS:
        raise _fail(path, f"kind must be one of {KINDS}")
    if data["arch"] not in ARCHES:
        raise _fail(path, f"arch must be one of {ARCHES}")
    families = tuple(data["families"])
    if not families or set(families) - set(FAMILIES):
        raise _fail(path, f"families must be some of {sorted(FAMILIES)}")
    text = data["text"]
    lines = set(text.splitlines())
    decoys = tuple(data.get("decoys", ()))
    missing = [d for d in decoys if d not in lines]
    if missing:
        raise _fail(path, f"decoys must be lines of text: {missing[0]!r}")
    expected = tuple(_expected(path, n, t) for n, t in enumerate(data.get("expected", [])))
    if not expected and not decoys:
        raise _fail(path, "an entry holds expected records, decoys, or both")
    page_size = data.get("page_size")
    if page_size is not None and (page_size <= 0 or page_size & (page_size - 1)):
        raise _fail(path, "page_size must be a power of two")
    return CorpusLog(
        id=data["id"], url=data["url"], source=data["source"], kind=data["kind"],
        arch=data["arch"], page_size=page_size, families=families, text=text,
        expected=expected, decoys=decoys, known_gap=data.get("known_gap") or None, path=path,
        year=data.get("year"),
    )  # fmt: skip


def load_all(directory: Path = REAL_DIR) -> list[CorpusLog]:
    """Every corpus file, sorted by id."""
    return [load(p) for p in sorted(directory.glob("*.toml"))]
