# ruff: noqa: E501  (real log lines are kept verbatim, one per line)
"""Real memory-error text from public sources, and EVERY field each record must decode to.

Each entry is ``(id, kind, text, records)``: ``kind`` picks the parser (``klog`` =
:func:`parse_kernel_log`, ``mcelog`` = :func:`parse_mcelog`, ``rasmcctl`` =
:func:`parse_ras_mc_ctl_error`) and ``records`` lists :func:`full_fields` of each record
— all fields, None included, so a field that starts decoding (or stops) fails the test.
Lines are verbatim from the source named in :data:`SOURCES`; the only edits are noted
there. None is synthetic. The same corpus feeds test_corpus_roundtrip.py.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from memras.ingest.parsers import parse_kernel_log, parse_mcelog, parse_ras_mc_ctl_error
from memras.records import Record

SOURCES = {
    "sb_edac-syslog-no-host-radiasoft-devops-134": "github.com/radiasoft/devops issue #134 (2018-02-23, Ivy Bridge-EP, syslog without host; the EDAC line has two spaces before 'kernel:')",
    "sb_edac-dmesg-T-full-registers-edac-utils-10": "github.com/grondo/edac-utils issue #10, 'server 1' block (2020-01-27), incl. TSC/ADDR/MISC/PROCESSOR lines",
    "sb_edac-syslog-iso-overflow-blog-NF5270M3-talos-2025": "public blog post (Inspur NF5270M3 'talos', /var/log/syslog, 2025-04-04) quoted in a GitHub-hosted notes file; search index read_file id 9202170425",
    "sb_edac-dmesg-no-mce-lines-blog-NF5270M3-talos-2025": "same post, its dmesg excerpt (uptime 19114.87, no MCE register lines)",
    "ghes-no-address-syslog-iso-blog-NF5270M3-talos-2025": "same post, /var/log/syslog GHES block without physical_address (syslog removed the CPER indent)",
    "sb_edac-syslog-overflow-29589-blog-dct-liberty-ctldb": "public notes file (host dct-liberty-ctldb-001, /var/log/messages, Nov 3), search index id 37935806997; the source wraps the line before 'area:', joined here",
    "sb_edac-kernel-doc-einj-rst": "linux Documentation/firmware-guide/acpi/apei/einj.rst example dmesg (pre-Ha# sb_edac label)",
    "i7core-no-address-stacked-prefix-openstreetmap-operations-300": "github.com/openstreetmap/operations issue #300 (host errol, 2019-05-07): syslog + printk time, page:0x0 offset:0x0",
    "skx-adxl-count0-bank255-public-log-parser-2023-04": "public log-parser source (EDAC skx pattern module) comment block, 2023-04-15 (GHES-injected bank 255, '0 CE')",
    "skx-adxl-full-registers-debug-line-public-log-parser-2023-11": "same source, 2023-11-25 block incl. TSC/ADDR/MISC/PROCESSOR and the 'EDAC DEBUG: skx_mce_output_error' line",
    "amd64-cannot-decode-normalized-linux-edac-venev-f19h-m60": "linux-edac list, Hristo Venev 'EDAC/amd64: add support for family 19h models 60h-7Fh' (quoted in Borislav Petkov's 'Applied' reply)",
    "amd64-deferred-ppin-linux-edac-umc-normaddr-patch": "linux-edac list, AMD UMC normaddr fix commit message ('Before this fix' log, CPU:65 family 19h model 11h)",
    "ghes-old-node-space-dimm-location-node-problem-detector-846": "github.com/kubernetes/node-problem-detector PR #846 description ('Corrected error' example); the PR prints 'kernel: ' before each line (timestamp/host elided) and joins some lines: split back, 'kernel: ' removed",
    "ghes-recoverable-multibit-dimm-not-present-matrixone-20374": "github.com/matrixorigin/matrixone issue #20374 comment (host mo-srv-128, 2024-11-26), first section (the quote is cut at 'Error 1')",
    "arm64-ghes_edac-line-before-block-phytium-s5000c-blog": "public blog on RAS on a Phytium S5000C (aarch64) board, dmesg 2023-11-21, search index id 18461623803: ghes_edac's line printed BEFORE its GHES block",
    "memory-failure-3.x-mce-prefix-hwpoison-inject-wanpeng-li": "linux-mm, Wanpeng Li 'mm/hwpoison-inject' patch, 'After patch' log",
    "memory-failure-3.x-failed-still-referenced-chen-gong": "LKML, Chen Gong 'mm, memory-failure: ... still referenced' patch (2014), 'After this patch' log",
    "memory-failure-4.x-recovery-action-triforce-fuzzer-2": "github.com/nccgroup/TriforceLinuxSyscallFuzzer issue #2 (madvise MADV_HWPOISON)",
    "mcelog-syslog-spr-uc-ppin-microcode-linux-edac-2024": "linux-edac list 2024 (mcelog persistent-record patchset discussion), mcelog[2783] syslog record, Sapphire Rapids (model 143)",
    "mcelog-old-HARDWARE-ERROR-header-nehalem-blog": "public Chinese sysadmin blog on mcelog (/var/log/mcelog, pre-1.0 'HARDWARE ERROR' header), search index id 5568447728; the blog put a blank line between lines, removed",
    "ras-mc-ctl-errors-skx-old-detail-openstreetmap-operations-759-row24": "github.com/openstreetmap/operations issue #759 (snap-02, ras-mc-ctl --errors, 2022-10-16)",
    "ras-mc-ctl-errors-skx-old-detail-openstreetmap-operations-759-row25": "same issue, next row",
}

# Real lines that are NOT memory errors: each must give no record and be counted.
PUBLIC_DECOYS = [
    # igen6 boot-time IBECC reports with no EDAC line after them: spurious (linux-edac
    # thread "Constant EDAC igen6 MC0: HANDLING IBECC MEMORY ERROR printed in dmesg",
    # Steven Haigh / Qiuxu Zhuo, 2025-04; ce_count stays 0)
    "[   12.870449] EDAC igen6 MC0: HANDLING IBECC MEMORY ERROR",
    "[   12.870451] EDAC igen6 MC0: ADDR 0x807fbfffe0",
    # the same spurious report in a localized journal (lower-case month), search id 31065681739
    "jan 20 12:40:57 beelink kernel: EDAC igen6 MC0: HANDLING IBECC MEMORY ERROR",
    "jan 20 12:40:57 beelink kernel: EDAC igen6 MC0: ADDR 0x7fffffffe0",
    "jan 20 12:40:57 beelink kernel: EDAC igen6: v2.5.1",
    # soft-offline outcome, not a memory_failure action (blog NF5270M3 'talos')
    "2025-04-04T18:23:54.720029+08:00 talos kernel: Memory failure: 0x46fab5: unhandlable page.",
    # amd64_edac boot banner (github.com/oVirt/ovirt-node-ng-image issue #88)
    "Oct 14 15:45:43 ovnode02.ws-datenservice.de kernel: EDAC MC0: Giving out device to module amd64_edac controller F19h: DEV 0000:00:18.3 (INTERRUPT)",
]


def parse_public(kind: str, text: str) -> list[Record]:
    if kind == "klog":
        return list(parse_kernel_log(text.splitlines()))
    if kind == "mcelog":
        return list(parse_mcelog(text))
    record = parse_ras_mc_ctl_error(text)
    return [] if record is None else [record]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value") and not isinstance(value, int):
        return value.value  # ErrorType / Source
    return value


def full_fields(record: Record) -> dict[str, Any]:
    """Every field of a record as plain data (raw as its line count, source left out)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if f.name in ("raw", "source") or (f.name == "repeat" and value == 0):
            continue  # repeat: only a 2nd identical line carries one
        if f.name in ("location", "mce"):
            out[f.name] = None if value is None else dataclasses.asdict(value)
        else:
            out[f.name] = _plain(value)
    out["raw_lines"] = len(record.raw.splitlines())
    return out


PUBLIC_CORPUS: list[tuple[str, str, str, list[dict[str, Any]]]] = [
    (
        "sb_edac-syslog-no-host-radiasoft-devops-134",
        "klog",
        "Feb 23 03:28:16 kernel: mce: [Hardware Error]: Machine check events logged\n"
        "Feb 23 03:28:16 kernel: EDAC sbridge MC1: HANDLING MCE MEMORY ERROR\n"
        "Feb 23 03:28:16 kernel: EDAC sbridge MC1: CPU 1: Machine Check Event: 0 Bank 11: "
        "8c00004f000800c2\n"
        "Feb 23 03:28:16 kernel: EDAC sbridge MC1: TSC 0\n"
        "Feb 23 03:28:16 kernel: EDAC sbridge MC1: ADDR ee30a0000\n"
        "Feb 23 03:28:16 kernel: EDAC sbridge MC1: MISC 900040004001e8c\n"
        "Feb 23 03:28:16 kernel: EDAC sbridge MC1: PROCESSOR 0:306e4 TIME 1519356496 SOCKET 1 APIC 20\n"
        "Feb 23 03:28:16  kernel: EDAC MC1: 1 CE memory scrubbing error on "
        "CPU_SrcID#1_Ha#0_Chan#0_DIMM#0 (channel:0 slot:0 page:0xee30a0 offset:0x0 grain:32 syndrome:0x0 "
        "-  area:DRAM err_code:0008:00c2 socket:1 ha:0 channel_mask:1 rank:0)",
        [
            {
                "error_type": "Corrected",
                "count": 1,
                "timestamp": None,
                "uptime_s": None,
                "address": 63938625536,
                "normalized_address": None,
                "page_shift": 12,
                "grain_bits": 5,
                "syndrome": 0,
                "message": "memory scrubbing error",
                "driver": "sb_edac",
                "driver_detail": "area:DRAM err_code:0008:00c2 socket:1 ha:0 channel_mask:1 rank:0",
                "location": {
                    "socket": 1,
                    "mc": 1,
                    "channel": 0,
                    "slot": 0,
                    "csrow": None,
                    "rank": 0,
                    "bank_group": None,
                    "bank": None,
                    "row": None,
                    "column": None,
                    "device": None,
                    "label": "CPU_SrcID#1_Ha#0_Chan#0_DIMM#0",
                    "top_layer": 0,
                    "middle_layer": 0,
                    "lower_layer": None,
                },
                "mce": {
                    "status": 10088063504612851906,
                    "bank": 11,
                    "addr": 63938625536,
                    "misc": 648522744454979212,
                    "mcgcap": 0,
                    "mcgstatus": 0,
                    "ip": 0,
                    "tsc": 0,
                    "walltime": 1519356496,
                    "cpu": 1,
                    "cpuid": 198372,
                    "apicid": 32,
                    "socketid": 1,
                    "cs": 0,
                    "cpuvendor": 0,
                    "ipid": 0,
                    "synd": 0,
                    "ppin": 0,
                    "microcode": 0,
                },
                "kmsg_seq": None,
                "raw_lines": 7,
            }
        ],
    ),
    (
        "sb_edac-dmesg-T-full-registers-edac-utils-10",
        "klog",
        "[Mon Jan 27 19:27:15 2020] mce: [Hardware Error]: Machine check events logged\n"
        "[Mon Jan 27 19:27:15 2020] EDAC sbridge MC0: HANDLING MCE MEMORY ERROR\n"
        "[Mon Jan 27 19:27:15 2020] EDAC sbridge MC0: CPU 0: Machine Check Event: 0 Bank 5: "
        "8c00004000010092\n"
        "[Mon Jan 27 19:27:15 2020] EDAC sbridge MC0: TSC 0\n"
        "[Mon Jan 27 19:27:15 2020] EDAC sbridge MC0: ADDR 849923380\n"
        "[Mon Jan 27 19:27:15 2020] EDAC sbridge MC0: MISC 42525286\n"
        "[Mon Jan 27 19:27:15 2020] EDAC sbridge MC0: PROCESSOR 0:206d7 TIME 1580149818 SOCKET 0 APIC 0\n"
        "[Mon Jan 27 19:27:15 2020] EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#2_DIMM#0 "
        "(channel:2 slot:0 page:0x849923 offset:0x380 grain:32 syndrome:0x0 -  area:DRAM "
        "err_code:0001:0092 socket:0 ha:0 channel_mask:4 rank:0)",
        [
            {
                "error_type": "Corrected",
                "count": 1,
                "timestamp": "2020-01-27T19:27:15",
                "uptime_s": None,
                "address": 35594056576,
                "normalized_address": None,
                "page_shift": 12,
                "grain_bits": 5,
                "syndrome": 0,
                "message": "memory read error",
                "driver": "sb_edac",
                "driver_detail": "area:DRAM err_code:0001:0092 socket:0 ha:0 channel_mask:4 rank:0",
                "location": {
                    "socket": 0,
                    "mc": 0,
                    "channel": 2,
                    "slot": 0,
                    "csrow": None,
                    "rank": 0,
                    "bank_group": None,
                    "bank": None,
                    "row": None,
                    "column": None,
                    "device": None,
                    "label": "CPU_SrcID#0_Ha#0_Chan#2_DIMM#0",
                    "top_layer": 2,
                    "middle_layer": 0,
                    "lower_layer": None,
                },
                "mce": {
                    "status": 10088063440187883666,
                    "bank": 5,
                    "addr": 35594056576,
                    "misc": 1112691334,
                    "mcgcap": 0,
                    "mcgstatus": 0,
                    "ip": 0,
                    "tsc": 0,
                    "walltime": 1580149818,
                    "cpu": 0,
                    "cpuid": 132823,
                    "apicid": 0,
                    "socketid": 0,
                    "cs": 0,
                    "cpuvendor": 0,
                    "ipid": 0,
                    "synd": 0,
                    "ppin": 0,
                    "microcode": 0,
                },
                "kmsg_seq": None,
                "raw_lines": 7,
            }
        ],
    ),
    (
        "sb_edac-syslog-iso-overflow-blog-NF5270M3-talos-2025",
        "klog",
        "2025-04-04T18:24:01.695052+08:00 talos kernel: RAS: Soft-offlining pfn: 0x104e5c\n"
        "2025-04-04T18:24:01.695076+08:00 talos kernel: EDAC sbridge MC0: HANDLING MCE MEMORY ERROR\n"
        "2025-04-04T18:24:01.695080+08:00 talos kernel: EDAC sbridge MC0: CPU 0: Machine Check Event: 0 "
        "Bank 7: cc00050000010092\n"
        "2025-04-04T18:24:01.695082+08:00 talos kernel: EDAC sbridge MC0: TSC 0 \n"
        "2025-04-04T18:24:01.695084+08:00 talos kernel: EDAC sbridge MC0: ADDR 104e5c8c0 \n"
        "2025-04-04T18:24:01.695086+08:00 talos kernel: EDAC sbridge MC0: MISC 40584e86 \n"
        "2025-04-04T18:24:01.695088+08:00 talos kernel: EDAC sbridge MC0: PROCESSOR 0:306e4 TIME "
        "1743762241 SOCKET 0 APIC 0\n"
        "2025-04-04T18:24:01.695090+08:00 talos kernel: EDAC MC0: 20 CE memory read error on "
        "CPU_SrcID#0_Ha#0_Chan#2_DIMM#0 (channel:2 slot:0 page:0x104e5c offset:0x8c0 grain:32 "
        "syndrome:0x0 -  OVERFLOW area:DRAM err_code:0001:0092 socket:0 ha:0 channel_mask:4 rank:1 )\n"
        "2025-04-04T18:24:01.695094+08:00 talos kernel: Memory failure: 0x104e5c: unhandlable page.",
        [
            {
                "error_type": "Corrected",
                "count": 20,
                "timestamp": "2025-04-04T18:24:01.695090+08:00",
                "uptime_s": None,
                "address": 4377135296,
                "normalized_address": None,
                "page_shift": 12,
                "grain_bits": 5,
                "syndrome": 0,
                "message": "memory read error",
                "driver": "sb_edac",
                "driver_detail": "OVERFLOW area:DRAM err_code:0001:0092 socket:0 ha:0 channel_mask:4 rank:1",
                "location": {
                    "socket": 0,
                    "mc": 0,
                    "channel": 2,
                    "slot": 0,
                    "csrow": None,
                    "rank": 1,
                    "bank_group": None,
                    "bank": None,
                    "row": None,
                    "column": None,
                    "device": None,
                    "label": "CPU_SrcID#0_Ha#0_Chan#2_DIMM#0",
                    "top_layer": 2,
                    "middle_layer": 0,
                    "lower_layer": None,
                },
                "mce": {
                    "status": 14699754681295503506,
                    "bank": 7,
                    "addr": 4377135296,
                    "misc": 1079529094,
                    "mcgcap": 0,
                    "mcgstatus": 0,
                    "ip": 0,
                    "tsc": 0,
                    "walltime": 1743762241,
                    "cpu": 0,
                    "cpuid": 198372,
                    "apicid": 0,
                    "socketid": 0,
                    "cs": 0,
                    "cpuvendor": 0,
                    "ipid": 0,
                    "synd": 0,
                    "ppin": 0,
                    "microcode": 0,
                },
                "kmsg_seq": None,
                "raw_lines": 7,  # the outcome line joins the soft offline below
            },
            {  # the CE collector soft-offlined the page; memory-failure.c refused it
                "pfn": 0x104E5C,
                "page_type": "soft offline (CE collector)",
                "action_result": "Failed",
                "timestamp": "2025-04-04T18:24:01.695052+08:00",
                "uptime_s": None,
                "kmsg_seq": None,
                "raw_lines": 2,
            },
        ],
    ),
    (
        "sb_edac-dmesg-no-mce-lines-blog-NF5270M3-talos-2025",
        "klog",
        "[19114.873932] EDAC sbridge MC0: HANDLING MCE MEMORY ERROR\n"
        "[19114.874122] EDAC MC0: 16385 CE memory read error on CPU_SrcID#0_Ha#0_Chan#2_DIMM#0 "
        "(channel:2 slot:0 page:0x46f934 offset:0xbc0 grain:32 syndrome:0x0 -  OVERFLOW area:DRAM "
        "err_code:0001:0092 socket:0 ha:0 channel_mask:4 rank:1 )",
        [
            {
                "error_type": "Corrected",
                "count": 16385,
                "timestamp": None,
                "uptime_s": 19114.874122,
                "address": 19051793344,
                "normalized_address": None,
                "page_shift": 12,
                "grain_bits": 5,
                "syndrome": 0,
                "message": "memory read error",
                "driver": "sb_edac",
                "driver_detail": "OVERFLOW area:DRAM err_code:0001:0092 socket:0 ha:0 channel_mask:4 rank:1",
                "location": {
                    "socket": 0,
                    "mc": 0,
                    "channel": 2,
                    "slot": 0,
                    "csrow": None,
                    "rank": 1,
                    "bank_group": None,
                    "bank": None,
                    "row": None,
                    "column": None,
                    "device": None,
                    "label": "CPU_SrcID#0_Ha#0_Chan#2_DIMM#0",
                    "top_layer": 2,
                    "middle_layer": 0,
                    "lower_layer": None,
                },
                "mce": None,
                "kmsg_seq": None,
                "raw_lines": 2,
            }
        ],
    ),
    (
        "ghes-no-address-syslog-iso-blog-NF5270M3-talos-2025",
        "klog",
        "2025-04-04T18:23:55.230128+08:00 talos kernel: {3}[Hardware Error]: Hardware error from APEI "
        "Generic Hardware Error Source: 1\n"
        "2025-04-04T18:23:55.230140+08:00 talos kernel: {3}[Hardware Error]: It has been corrected by "
        "h/w and requires no further action\n"
        "2025-04-04T18:23:55.230141+08:00 talos kernel: {3}[Hardware Error]: event severity: corrected\n"
        "2025-04-04T18:23:55.230143+08:00 talos kernel: {3}[Hardware Error]: Error 0, type: corrected\n"
        "2025-04-04T18:23:55.230144+08:00 talos kernel: {3}[Hardware Error]: fru_text: CorrectedErr\n"
        "2025-04-04T18:23:55.230145+08:00 talos kernel: {3}[Hardware Error]: section_type: memory error\n"
        "2025-04-04T18:23:55.230146+08:00 talos kernel: {3}[Hardware Error]: node:0 device:0 \n"
        "2025-04-04T18:23:55.230147+08:00 talos kernel: {3}[Hardware Error]: error_type: 2, single-bit "
        "ECC",
        [
            {
                "error_type": "Corrected",
                "count": 1,
                "timestamp": "2025-04-04T18:23:55.230128+08:00",
                "uptime_s": None,
                "address": None,
                "normalized_address": None,
                "page_shift": None,
                "grain_bits": None,
                "syndrome": None,
                "message": "single-bit ECC",
                "driver": "ghes",
                "driver_detail": "node:0 device:0",
                "location": {
                    "socket": 0,
                    "mc": None,
                    "channel": None,
                    "slot": None,
                    "csrow": None,
                    "rank": None,
                    "bank_group": None,
                    "bank": None,
                    "row": None,
                    "column": None,
                    "device": 0,
                    "label": "CorrectedErr",
                    "top_layer": None,
                    "middle_layer": None,
                    "lower_layer": None,
                },
                "mce": None,
                "kmsg_seq": None,
                "raw_lines": 8,
            }
        ],
    ),
    (
        "sb_edac-syslog-overflow-29589-blog-dct-liberty-ctldb",
        "klog",
        "Nov  3 17:40:22 dct-liberty-ctldb-001 kernel: EDAC MC0: 29589 CE memory read error on "
        "CPU_SrcID#0_Ha#0_Chan#0_DIMM#1 (channel:0 slot:1 page:0x17374e offset:0x0 grain:32 syndrome:0x0 "
        "-  OVERFLOW area:DRAM err_code:0001:0090 socket:0 ha:0 channel_mask:1 rank:4)",
        [
            {
                "error_type": "Corrected",
                "count": 29589,
                "timestamp": None,
                "uptime_s": None,
                "address": 6232006656,
                "normalized_address": None,
                "page_shift": 12,
                "grain_bits": 5,
                "syndrome": 0,
                "message": "memory read error",
                "driver": "sb_edac",
                "driver_detail": "OVERFLOW area:DRAM err_code:0001:0090 socket:0 ha:0 channel_mask:1 rank:4",
                "location": {
                    "socket": 0,
                    "mc": 0,
                    "channel": 0,
                    "slot": 1,
                    "csrow": None,
                    "rank": 4,
                    "bank_group": None,
                    "bank": None,
                    "row": None,
                    "column": None,
                    "device": None,
                    "label": "CPU_SrcID#0_Ha#0_Chan#0_DIMM#1",
                    "top_layer": 0,
                    "middle_layer": 1,
                    "lower_layer": None,
                },
                "mce": None,
                "kmsg_seq": None,
                "raw_lines": 1,
            }
        ],
    ),
    (
        "sb_edac-kernel-doc-einj-rst",
        "klog",
        "[22716.616173] EDAC MC3: 1 CE memory read error on CPU_SrcID#0_Channel#0_DIMM#0 (channel:0 "
        "slot:0 page:0x12345 offset:0x0 grain:32 syndrome:0x0 -  area:DRAM err_code:0001:0090 socket:0 "
        "channel_mask:1 rank:0)",
        [
            {
                "error_type": "Corrected",
                "count": 1,
                "timestamp": None,
                "uptime_s": 22716.616173,
                "address": 305418240,
                "normalized_address": None,
                "page_shift": 12,
                "grain_bits": 5,
                "syndrome": 0,
                "message": "memory read error",
                "driver": "sb_edac",
                "driver_detail": "area:DRAM err_code:0001:0090 socket:0 channel_mask:1 rank:0",
                "location": {
                    "socket": 0,
                    "mc": 3,
                    "channel": 0,
                    "slot": 0,
                    "csrow": None,
                    "rank": 0,
                    "bank_group": None,
                    "bank": None,
                    "row": None,
                    "column": None,
                    "device": None,
                    "label": "CPU_SrcID#0_Channel#0_DIMM#0",
                    "top_layer": 0,
                    "middle_layer": 0,
                    "lower_layer": None,
                },
                "mce": None,
                "kmsg_seq": None,
                "raw_lines": 1,
            }
        ],
    ),
    (
        "i7core-no-address-stacked-prefix-openstreetmap-operations-300",
        "klog",
        "May  7 06:45:12 errol kernel: [21584690.529877] EDAC MC0: 4 CE error on CPU#0Channel#2_DIMM#0 "
        "(channel:2 slot:0 page:0x0 offset:0x0 grain:8 syndrome:0x0)",
        [
            {
                "error_type": "Corrected",
                "count": 4,
                "timestamp": None,
                "uptime_s": 21584690.529877,
                "address": None,
                "normalized_address": None,
                "page_shift": None,
                "grain_bits": 3,
                "syndrome": 0,
                "message": "error",
                "driver": "",
                "driver_detail": "",
                "location": {
                    "socket": None,
                    "mc": 0,
                    "channel": 2,
                    "slot": 0,
                    "csrow": None,
                    "rank": None,
                    "bank_group": None,
                    "bank": None,
                    "row": None,
                    "column": None,
                    "device": None,
                    "label": "CPU#0Channel#2_DIMM#0",
                    "top_layer": 2,
                    "middle_layer": 0,
                    "lower_layer": None,
                },
                "mce": None,
                "kmsg_seq": None,
                "raw_lines": 1,
            }
        ],
    ),
    (
        "skx-adxl-count0-bank255-public-log-parser-2023-04",
        "klog",
        "[Sat Apr 15 19:49:46 2023] EDAC skx MC0: HANDLING MCE MEMORY ERROR\n"
        "[Sat Apr 15 19:49:46 2023] EDAC skx MC0: CPU 0: Machine Check Event: 0x0 Bank 255: "
        "0x940000000000009f\n"
        "[Sat Apr 15 19:49:46 2023] EDAC skx MC0: TSC 0x0\n"
        "[Sat Apr 15 19:49:46 2023] EDAC skx MC0: ADDR 0x30aa905a80\n"
        "[Sat Apr 15 19:49:46 2023] EDAC skx MC0: MISC 0x0\n"
        "[Sat Apr 15 19:49:46 2023] EDAC skx MC0: PROCESSOR 0:0x806f8 TIME 1681559382 SOCKET 0 APIC 0x0\n"
        "[Sat Apr 15 19:49:46 2023] EDAC MC0: 0 CE memory read error on CPU_SrcID#0_MC#0_Chan#1_DIMM#0 "
        "(channel:1 slot:0 page:0x30aa905 offset:0xa80 grain:32 syndrome:0x0 -  err_code:0x0000:0x009f  "
        "SystemAddress:0x30aa905a80 ProcessorSocketId:0x0 MemoryControllerId:0x0 "
        "ChannelAddress:0x605520980 ChannelId:0x1 RankAddress:0x181548240 PhysicalRankId:0x1 "
        "DimmSlotId:0x0 DimmRankId:0x1 Row:0x442a Column:0x440 Bank:0x1 BankGroup:0x1 ChipSelect:0x2)",
        [
            {
                "error_type": "Corrected",
                "count": 1,  # printed "0 CE": one error (_common.edac_error_count)
                "timestamp": "2023-04-15T19:49:46",
                "uptime_s": None,
                "address": 209020017280,
                "normalized_address": None,
                "page_shift": 12,
                "grain_bits": 5,
                "syndrome": 0,
                "message": "memory read error",
                "driver": "skx_edac",
                "driver_detail": "err_code:0x0000:0x009f  SystemAddress:0x30aa905a80 ProcessorSocketId:0x0 "
                "MemoryControllerId:0x0 ChannelAddress:0x605520980 ChannelId:0x1 "
                "RankAddress:0x181548240 PhysicalRankId:0x1 DimmSlotId:0x0 DimmRankId:0x1 "
                "Row:0x442a Column:0x440 Bank:0x1 BankGroup:0x1 ChipSelect:0x2",
                "location": {
                    "socket": 0,
                    "mc": 0,
                    "channel": 1,
                    "slot": 0,
                    "csrow": None,
                    "rank": 1,
                    "bank_group": 1,
                    "bank": 1,
                    "row": 17450,
                    "column": 1088,
                    "device": None,
                    "label": "CPU_SrcID#0_MC#0_Chan#1_DIMM#0",
                    "top_layer": 1,
                    "middle_layer": 0,
                    "lower_layer": None,
                },
                "mce": {
                    "status": 10664523917613334687,
                    "bank": 255,
                    "addr": 209020017280,
                    "misc": 0,
                    "mcgcap": 0,
                    "mcgstatus": 0,
                    "ip": 0,
                    "tsc": 0,
                    "walltime": 1681559382,
                    "cpu": 0,
                    "cpuid": 526072,
                    "apicid": 0,
                    "socketid": 0,
                    "cs": 0,
                    "cpuvendor": 0,
                    "ipid": 0,
                    "synd": 0,
                    "ppin": 0,
                    "microcode": 0,
                },
                "kmsg_seq": None,
                "raw_lines": 7,
            }
        ],
    ),
    (
        "skx-adxl-full-registers-debug-line-public-log-parser-2023-11",
        "klog",
        "[Sat Nov 25 23:16:49 2023] mce: [Hardware Error]: Machine check events logged\n"
        "[Sat Nov 25 23:16:49 2023] EDAC skx MC1: HANDLING MCE MEMORY ERROR\n"
        "[Sat Nov 25 23:16:49 2023] EDAC skx MC1: CPU 0: Machine Check Event: 0x0 Bank 15: "
        "0x8c00004200800090\n"
        "[Sat Nov 25 23:16:49 2023] EDAC skx MC1: TSC 0x95f2e5afe67\n"
        "[Sat Nov 25 23:16:49 2023] EDAC skx MC1: ADDR 0x91b2f55c0\n"
        "[Sat Nov 25 23:16:49 2023] EDAC skx MC1: MISC 0xd001a213d905086\n"
        "[Sat Nov 25 23:16:49 2023] EDAC skx MC1: PROCESSOR 0:0x806f8 TIME 1700925409 SOCKET 0 APIC 0x0\n"
        "[Sat Nov 25 23:16:49 2023] EDAC DEBUG: skx_mce_output_error:  err_code:0x0080:0x0090  "
        "SystemAddress:0x91b2f55c0 ProcessorSocketId:0x0 MemoryControllerId:0x1 "
        "ChannelAddress:0x11365eac0 ChannelId:0x0 RankAddress:0x226cbd40 PhysicalRankId:0x0 "
        "DimmSlotId:0x1 DimmRankId:0x0 Row:0x27b2 Column:0xa0 Bank:0x0 BankGroup:0x5 ChipSelect:0x5\n"
        "[Sat Nov 25 23:16:49 2023] EDAC MC1: 1 CE memory read error on CPU_SrcID#0_MC#1_Chan#0_DIMM#1 "
        "(channel:0 slot:1 page:0x91b2f5 offset:0x5c0 grain:32 syndrome:0x0 -  err_code:0x0080:0x0090  "
        "SystemAddress:0x91b2f55c0 ProcessorSocketId:0x0 MemoryControllerId:0x1 "
        "ChannelAddress:0x11365eac0 ChannelId:0x0 RankAddress:0x226cbd40 PhysicalRankId:0x0 "
        "DimmSlotId:0x1 DimmRankId:0x0 Row:0x27b2 Column:0xa0 Bank:0x0 BankGroup:0x5 ChipSelect:0x5)",
        [
            {
                "error_type": "Corrected",
                "count": 1,
                "timestamp": "2023-11-25T23:16:49",
                "uptime_s": None,
                "address": 39110792640,
                "normalized_address": None,
                "page_shift": 12,
                "grain_bits": 5,
                "syndrome": 0,
                "message": "memory read error",
                "driver": "skx_edac",
                "driver_detail": "err_code:0x0080:0x0090  SystemAddress:0x91b2f55c0 ProcessorSocketId:0x0 "
                "MemoryControllerId:0x1 ChannelAddress:0x11365eac0 ChannelId:0x0 "
                "RankAddress:0x226cbd40 PhysicalRankId:0x0 DimmSlotId:0x1 DimmRankId:0x0 "
                "Row:0x27b2 Column:0xa0 Bank:0x0 BankGroup:0x5 ChipSelect:0x5",
                "location": {
                    "socket": 0,
                    "mc": 1,
                    "channel": 0,
                    "slot": 1,
                    "csrow": None,
                    "rank": 0,
                    "bank_group": 5,
                    "bank": 0,
                    "row": 10162,
                    "column": 160,
                    "device": None,
                    "label": "CPU_SrcID#0_MC#1_Chan#0_DIMM#1",
                    "top_layer": 0,
                    "middle_layer": 1,
                    "lower_layer": None,
                },
                "mce": {
                    "status": 10088063448786141328,
                    "bank": 15,
                    "addr": 39110792640,
                    "misc": 936777452562174086,
                    "mcgcap": 0,
                    "mcgstatus": 0,
                    "ip": 0,
                    "tsc": 10304404258407,
                    "walltime": 1700925409,
                    "cpu": 0,
                    "cpuid": 526072,
                    "apicid": 0,
                    "socketid": 0,
                    "cs": 0,
                    "cpuvendor": 0,
                    "ipid": 0,
                    "synd": 0,
                    "ppin": 0,
                    "microcode": 0,
                },
                "kmsg_seq": None,
                "raw_lines": 7,
            }
        ],
    ),
    (
        "amd64-cannot-decode-normalized-linux-edac-venev-f19h-m60",
        "klog",
        "[  313.747594] mce: [Hardware Error]: Machine check events logged\n"
        "[  313.747597] [Hardware Error]: Corrected error, no action required.\n"
        "[  313.747613] [Hardware Error]: CPU:0 (19:61:2) "
        "MC21_STATUS[Over|CE|MiscV|AddrV|-|-|SyndV|CECC|-|-|-]: 0xdc2040000400011b\n"
        "[  313.747632] [Hardware Error]: Error Addr: 0x00000007ff7e93c0\n"
        "[  313.747639] [Hardware Error]: IPID: 0x0000009600050f00, Syndrome: 0x000100010a801203\n"
        "[  313.747652] [Hardware Error]: Unified Memory Controller Ext. Error Code: 0, DRAM ECC error.\n"
        "[  313.747669] EDAC MC0: 1 CE Cannot decode normalized address on mc#0csrow#3channel#0 (csrow:3 "
        "channel:0 page:0x0 offset:0x0 grain:64 syndrome:0x1)\n"
        "[  313.747672] [Hardware Error]: cache level: L3/GEN, tx: GEN, mem-tx: RD",
        [
            {
                "error_type": "Corrected",
                "count": 1,
                "timestamp": None,
                "uptime_s": 313.747669,
                "address": None,
                "normalized_address": 34351256512,
                "page_shift": None,
                "grain_bits": 6,
                "syndrome": 1,
                "message": "Cannot decode normalized address",
                "driver": "",
                "driver_detail": "",
                "location": {
                    "socket": None,
                    "mc": 0,
                    "channel": 0,
                    "slot": None,
                    "csrow": 3,
                    "rank": None,
                    "bank_group": None,
                    "bank": None,
                    "row": None,
                    "column": None,
                    "device": None,
                    "label": "mc#0csrow#3channel#0",
                    "top_layer": 3,
                    "middle_layer": 0,
                    "lower_layer": None,
                },
                "mce": {
                    "status": 15861748256410173723,
                    "bank": 21,
                    "addr": 0,
                    "misc": 0,
                    "mcgcap": 0,
                    "mcgstatus": 0,
                    "ip": 0,
                    "tsc": 0,
                    "walltime": 0,
                    "cpu": 0,
                    "cpuid": 0,
                    "apicid": 0,
                    "socketid": 0,
                    "cs": 0,
                    "cpuvendor": 2,
                    "ipid": 644245425920,
                    "synd": 281479447843331,
                    "ppin": 0,
                    "microcode": 0,
                },
                "kmsg_seq": None,
                "raw_lines": 7,
            }
        ],
    ),
    (
        "amd64-deferred-ppin-linux-edac-umc-normaddr-patch",
        "klog",
        "[51295.726640] [Hardware Error]: Deferred error, no action required.\n"
        "[51295.733448] [Hardware Error]: CPU:65 (19:11:1) "
        "MC21_STATUS[-|-|-|AddrV|-|-|SyndV|UECC|Deferred|-|Scrub]: 0x942031000400011b\n"
        "[51295.733452] [Hardware Error]: Error Addr: 0x0000000006350a00\n"
        "[51295.733453] [Hardware Error]: PPIN: 0x02b69e294c148024\n"
        "[51295.733453] [Hardware Error]: IPID: 0x0000109600250f00, Syndrome: 0x9a4a00000b800000\n"
        "[51295.733455] [Hardware Error]: Unified Memory Controller Ext. Error Code: 0, DRAM ECC error.\n"
        "[51295.733463] mce: umc_normaddr_to_sysaddr: Invalid DramBaseAddress range: 0x0.\n"
        "[51295.733471] EDAC MC0: 1 UE Cannot decode normalized address on mc#0csrow#0channel#2 (csrow:0 "
        "channel:2 page:0x0 offset:0x0 grain:64)\n"
        "[51295.733471] [Hardware Error]: cache level: L3/GEN, tx: GEN, mem-tx: RD",
        [
            {
                "error_type": "Deferred",
                "count": 1,
                "timestamp": None,
                "uptime_s": 51295.733471,
                "address": None,
                "normalized_address": 104139264,
                "page_shift": None,
                "grain_bits": 6,
                "syndrome": None,
                "message": "Cannot decode normalized address",
                "driver": "",
                "driver_detail": "",
                "location": {
                    "socket": None,
                    "mc": 0,
                    "channel": 2,
                    "slot": None,
                    "csrow": 0,
                    "rank": None,
                    "bank_group": None,
                    "bank": None,
                    "row": None,
                    "column": None,
                    "device": None,
                    "label": "mc#0csrow#0channel#2",
                    "top_layer": 0,
                    "middle_layer": 2,
                    "lower_layer": None,
                },
                "mce": {
                    "status": 10673584993004945691,
                    "bank": 21,
                    "addr": 0,
                    "misc": 0,
                    "mcgcap": 0,
                    "mcgstatus": 0,
                    "ip": 0,
                    "tsc": 0,
                    "walltime": 0,
                    "cpu": 65,
                    "cpuid": 0,
                    "apicid": 0,
                    "socketid": 0,
                    "cs": 0,
                    "cpuvendor": 2,
                    "ipid": 18236433567488,
                    "synd": 11117698630310428672,
                    "ppin": 195517534044454948,
                    "microcode": 0,
                },
                "kmsg_seq": None,
                "raw_lines": 8,
            }
        ],
    ),
    (
        "ghes-old-node-space-dimm-location-node-problem-detector-846",
        "klog",
        "{37}[Hardware Error]: Hardware error from APEI Generic Hardware Error Source: 162\n"
        "{37}[Hardware Error]: It has been corrected by h/w and requires no further action\n"
        "{37}[Hardware Error]: event severity: corrected\n"
        "{37}[Hardware Error]:  Error 0, type: corrected\n"
        "{37}[Hardware Error]:   section_type: memory error\n"
        "{37}[Hardware Error]:   error_status: 0x0000000000000400\n"
        "{37}[Hardware Error]:   physical_address: 0x000000b50c68ce80\n"
        "{37}[Hardware Error]:   node: 1 card: 4 module: 0 rank: 0 bank: 1 device: 14 row: 58165 column: "
        "816\n"
        "{37}[Hardware Error]:   error_type: 2, single-bit ECC\n"
        "{37}[Hardware Error]:   DIMM location: CPU 2 DIMM 30",
        [
            {
                "error_type": "Corrected",
                "count": 1,
                "timestamp": None,
                "uptime_s": None,
                "address": 777597275776,
                "normalized_address": None,
                "page_shift": None,
                "grain_bits": None,
                "syndrome": None,
                "message": "single-bit ECC",
                "driver": "ghes",
                "driver_detail": "node: 1 card: 4 module: 0 rank: 0 bank: 1 device: 14 row: 58165 column: 816",
                "location": {
                    "socket": 1,
                    "mc": None,
                    "channel": None,
                    "slot": None,
                    "csrow": None,
                    "rank": 0,
                    "bank_group": None,
                    "bank": 1,
                    "row": 58165,
                    "column": 816,
                    "device": 14,
                    "label": "CPU 2 DIMM 30",
                    "top_layer": None,
                    "middle_layer": None,
                    "lower_layer": None,
                },
                "mce": None,
                "kmsg_seq": None,
                "raw_lines": 10,
            }
        ],
    ),
    (
        "ghes-recoverable-multibit-dimm-not-present-matrixone-20374",
        "klog",
        "Nov 26 09:36:22 mo-srv-128 kernel: {7}[Hardware Error]: Hardware error from APEI Generic "
        "Hardware Error Source: 4\n"
        "Nov 26 09:36:22 mo-srv-128 kernel: {7}[Hardware Error]: event severity: recoverable\n"
        "Nov 26 09:36:22 mo-srv-128 kernel: {7}[Hardware Error]:  Error 0, type: recoverable\n"
        "Nov 26 09:36:22 mo-srv-128 kernel: {7}[Hardware Error]:  fru_text: B2\n"
        "Nov 26 09:36:22 mo-srv-128 kernel: {7}[Hardware Error]:   section_type: memory error\n"
        "Nov 26 09:36:22 mo-srv-128 kernel: {7}[Hardware Error]:    error_status: Storage error in DRAM "
        "memory (0x0000000000000400)\n"
        "Nov 26 09:36:22 mo-srv-128 kernel: {7}[Hardware Error]:   physical_address: 0x000000276aeb0180\n"
        "Nov 26 09:36:22 mo-srv-128 kernel: {7}[Hardware Error]:   physical_address_mask: "
        "0xffffffffffffffc0\n"
        "Nov 26 09:36:22 mo-srv-128 kernel: {7}[Hardware Error]:   node:1 card:4 module:0 rank:0 bank:6 "
        "device:0 row:24237 column:24\n"
        "Nov 26 09:36:22 mo-srv-128 kernel: {7}[Hardware Error]:   error_type: 3, multi-bit ECC\n"
        "Nov 26 09:36:22 mo-srv-128 kernel: {7}[Hardware Error]:   DIMM location: not present. DMI "
        "handle: 0x0000",
        [
            {
                "error_type": "Uncorrected",
                "count": 1,
                "timestamp": None,
                "uptime_s": None,
                "address": 169297510784,
                "normalized_address": None,
                "page_shift": None,
                "grain_bits": 6,
                "syndrome": None,
                "message": "multi-bit ECC",
                "driver": "ghes",
                "driver_detail": "node:1 card:4 module:0 rank:0 bank:6 device:0 row:24237 column:24",
                "location": {
                    "socket": 1,
                    "mc": None,
                    "channel": None,
                    "slot": None,
                    "csrow": None,
                    "rank": 0,
                    "bank_group": None,
                    "bank": 6,
                    "row": 24237,
                    "column": 24,
                    "device": 0,
                    "label": "B2",
                    "top_layer": None,
                    "middle_layer": None,
                    "lower_layer": None,
                },
                "mce": None,
                "kmsg_seq": None,
                "raw_lines": 11,
            }
        ],
    ),
    (
        "arm64-ghes_edac-line-before-block-phytium-s5000c-blog",
        "klog",
        "[  838.468750] [Firmware Bug]: APEI: Invalid physical address in GAR [0x0/32/0/3/0]\n"
        "[  838.469270] EDAC MC0: 1 CE Single-bit ECC on BANK 0 DIMM 1 (node:0 card:1 module:0 bank:0 "
        "row:8192 col:0 bit_pos:5 DIMM location:BANK 0 DIMM 1 page:0x80000 offset:0x0 grain:4096 "
        "syndrome:0x0 - APEI location: n)\n"
        "[  838.469500] {2}[Hardware Error]: Hardware error from APEI Generic Hardware Error Source: 2\n"
        "[  838.469555] {2}[Hardware Error]: It has been corrected by h/w and requires no further "
        "action\n"
        "[  838.469600] {2}[Hardware Error]: event severity: corrected\n"
        "[  838.469647] {2}[Hardware Error]:  precise tstamp: 2023-11-21 07:41:29\n"
        "[  838.469740] {2}[Hardware Error]:  Error 0, type: corrected\n"
        "[  838.469792] {2}[Hardware Error]:   section_type: memory error\n"
        "[  838.469825] {2}[Hardware Error]:   physical_address: 0x0000000080000000\n"
        "[  838.469874] {2}[Hardware Error]:   physical_address_mask: 0xfffffffffffff000\n"
        "[  838.469988] {2}[Hardware Error]:   node: 0 card: 1 module: 0 bank: 0 device: 1 row: 8192 "
        "column: 0 bit_position: 5 requestor_id: 0x0000000000000001 responder_id: 0x0000000000000001 "
        "target_id: 0x000000000000000 \n"
        "[  838.470044] {2}[Hardware Error]:   error_type: 2, single-bit ECC\n"
        "[  838.470101] {2}[Hardware Error]:   DIMM location: BANK 0 DIMM 1 ",
        [
            {
                "error_type": "Corrected",
                "count": 1,
                "timestamp": None,
                "uptime_s": 838.46927,
                "address": 2147483648,
                "normalized_address": None,
                "page_shift": None,
                "grain_bits": 12,
                "syndrome": None,
                "message": "single-bit ECC",
                "driver": "ghes",
                "driver_detail": "node: 0 card: 1 module: 0 bank: 0 device: 1 row: 8192 column: 0 "
                "bit_position: 5 requestor_id: 0x0000000000000001 responder_id: "
                "0x0000000000000001 target_id: 0x000000000000000",
                "location": {
                    "socket": 0,
                    "mc": 0,
                    "channel": None,
                    "slot": None,
                    "csrow": None,
                    "rank": None,
                    "bank_group": None,
                    "bank": 0,
                    "row": 8192,
                    "column": 0,
                    "device": 1,
                    "label": "BANK 0 DIMM 1",
                    "top_layer": None,
                    "middle_layer": None,
                    "lower_layer": None,
                },
                "mce": None,
                "kmsg_seq": None,
                "raw_lines": 12,
            }
        ],
    ),
    (
        "memory-failure-3.x-mce-prefix-hwpoison-inject-wanpeng-li",
        "klog",
        "[   94.710860] Injecting memory failure at pfn 215b68\n"
        "[   94.710885] MCE 0x215b68: dirty LRU page recovery: Recovered",
        [
            {
                "pfn": 2186088,
                "page_type": "dirty LRU",
                "action_result": "Recovered",
                "timestamp": None,
                "uptime_s": 94.710885,
                "kmsg_seq": None,
                "raw_lines": 1,
            }
        ],
    ),
    (
        "memory-failure-3.x-failed-still-referenced-chen-gong",
        "klog",
        "MCE 0x44e336: dirty mlocked LRU page recovery: Failed\n"
        "MCE 0x44e336: dirty mlocked LRU page still referenced by 1 users\n"
        "mce: Memory error not recovered",
        [
            {
                "pfn": 4514614,
                "page_type": "dirty mlocked LRU",
                "action_result": "Failed",
                "timestamp": None,
                "uptime_s": None,
                "kmsg_seq": None,
                "raw_lines": 1,
            }
        ],
    ),
    (
        "memory-failure-4.x-recovery-action-triforce-fuzzer-2",
        "klog",
        "[   18.875920] MCE 0x39c2: recovery action for dirty LRU page: Recovered",
        [
            {
                "pfn": 14786,
                "page_type": "dirty LRU page",
                "action_result": "Recovered",
                "timestamp": None,
                "uptime_s": 18.87592,
                "kmsg_seq": None,
                "raw_lines": 1,
            }
        ],
    ),
    (
        "mcelog-syslog-spr-uc-ppin-microcode-linux-edac-2024",
        "mcelog",
        "   mcelog[2783]: Running trigger `dimm-error-trigger' (reporter: memdb)\n"
        "   mcelog[2783]: Hardware event. This is not a software error.\n"
        "   mcelog[2783]: MCE 0\n"
        "   mcelog[2783]: not finished?\n"
        "   mcelog[2783]: CPU 0 BANK 16 TSC 2307d829a77\n"
        "   mcelog[2783]: RIP !INEXACT! 10:ffffffffa9588d6b\n"
        "   mcelog[2783]: MISC a0001201618f886 ADDR 1715d9880\n"
        "   mcelog[2783]: TIME 1732588816 Tue Nov 26 10:40:16 2024\n"
        "   mcelog[2783]: MCG status:RIPV MCIP\n"
        "   mcelog[2783]: MCi status:\n"
        "   mcelog[2783]: Uncorrected error\n"
        "   mcelog[2783]: Error enabled\n"
        "   mcelog[2783]: MCi_MISC register valid\n"
        "   mcelog[2783]: MCi_ADDR register valid\n"
        "   mcelog[2783]: Processor context corrupt\n"
        "   mcelog[2783]: MCA: MEMORY CONTROLLER RD_CHANNEL1_ERR\n"
        "   mcelog[2783]: Transaction: Memory read error\n"
        "   mcelog[2783]: MemCtrl: Uncorrected read error\n"
        "   mcelog[2783]: bank: 0x2 bankgroup: 0x1 row: 0x402c3 column: 0x1f0\n"
        "   mcelog[2783]: rank: 0x2 subrank: 0x0\n"
        "   mcelog[2783]: ecc mode: SDDC\n"
        "   mcelog[2783]: STATUS be00000200a00091 MCGSTATUS 5\n"
        "   mcelog[2783]: MCGCAP f000c15 APICID 0 SOCKETID 0\n"
        "   mcelog[2783]: PPIN 74f8640abf43c587\n"
        "   mcelog[2783]: MICROCODE 2b000571\n"
        "   mcelog[2783]: CPUID Vendor Intel Family 6 Model 143 Step 4",
        [
            {
                "error_type": "Fatal",
                "count": 1,
                "timestamp": "2024-11-26T02:40:16+00:00",
                "uptime_s": None,
                "address": 6196926592,
                "normalized_address": None,
                "page_shift": None,
                "grain_bits": 6,
                "syndrome": None,
                "message": "memory read error",
                "driver": "mce",
                "driver_detail": "MEMORY CONTROLLER RD_CHANNEL1_ERR bank:16 severity:panic",
                "location": {
                    "socket": 0,
                    "mc": None,
                    "channel": 1,
                    "slot": None,
                    "csrow": None,
                    "rank": None,
                    "bank_group": None,
                    "bank": None,
                    "row": None,
                    "column": None,
                    "device": None,
                    "label": None,
                    "top_layer": None,
                    "middle_layer": None,
                    "lower_layer": None,
                },
                "mce": {
                    "status": 13690942875806728337,
                    "bank": 16,
                    "addr": 6196926592,
                    "misc": 720577177700595846,
                    "mcgcap": 251661333,
                    "mcgstatus": 5,
                    "ip": 0,
                    "tsc": 2407287396983,
                    "walltime": 1732588816,
                    "cpu": 0,
                    "cpuid": 0,
                    "apicid": 0,
                    "socketid": 0,
                    "cs": 0,
                    "cpuvendor": 0,
                    "ipid": 0,
                    "synd": 0,
                    "ppin": 8428596699945223559,
                    "microcode": 721421681,
                },
                "kmsg_seq": None,
                "raw_lines": 25,
            }
        ],
    ),
    (
        "mcelog-old-HARDWARE-ERROR-header-nehalem-blog",
        "mcelog",
        "MCE 0\n"
        "HARDWARE ERROR. This is NOT a software problem!\n"
        "Please contact your hardware vendor\n"
        "CPU 1 BANK 8 TSC 1193fd60c6699 [at 2000 Mhz 1 days 18:56:49 uptime (unreliable)]\n"
        "MISC 8f44960800095840 ADDR 4a9f3b1c0\n"
        "MCG status:\n"
        "MCi status:\n"
        "Error overflow\n"
        "MCi_MISC register valid\n"
        "MCi_ADDR register valid\n"
        "MCA: MEMORY CONTROLLER RD_CHANNELunspecified_ERR\n"
        "Transaction: Memory read error\n"
        "Memory read ECC error\n"
        "Memory corrected error count (CORE_ERR_CNT): 18\n"
        "Memory transaction Tracker ID (RTId): 40\n"
        "Memory DIMM ID of error: 1\n"
        "Memory channel ID of error: 0\n"
        "Memory ECC syndrome: f449608\n"
        "STATUS cc0004800001009f MCGSTATUS 0",
        [
            {
                "error_type": "Corrected",
                "count": 18,
                "timestamp": None,
                "uptime_s": None,
                "address": None,
                "normalized_address": None,
                "page_shift": None,
                "grain_bits": None,
                "syndrome": None,
                "message": "memory read error",
                "driver": "mce",
                "driver_detail": "MEMORY CONTROLLER RD_CHANNELunspecified_ERR bank:8 severity:corrected",
                "location": {
                    "socket": None,
                    "mc": None,
                    "channel": None,
                    "slot": None,
                    "csrow": None,
                    "rank": None,
                    "bank_group": None,
                    "bank": None,
                    "row": None,
                    "column": None,
                    "device": None,
                    "label": None,
                    "top_layer": None,
                    "middle_layer": None,
                    "lower_layer": None,
                },
                "mce": {
                    "status": 14699754131539689631,
                    "bank": 8,
                    "addr": 20031189440,
                    "misc": 10323541206944536640,
                    "mcgcap": 0,
                    "mcgstatus": 0,
                    "ip": 0,
                    "tsc": 309236941481625,
                    "walltime": 0,
                    "cpu": 1,
                    "cpuid": 0,
                    "apicid": 0,
                    "socketid": 0,
                    "cs": 0,
                    "cpuvendor": 0,
                    "ipid": 0,
                    "synd": 0,
                    "ppin": 0,
                    "microcode": 0,
                },
                "kmsg_seq": None,
                "raw_lines": 18,
            }
        ],
    ),
    (
        "ras-mc-ctl-errors-skx-old-detail-openstreetmap-operations-759-row24",
        "rasmcctl",
        "24 2022-10-16 06:55:24 +0000 1 Corrected error(s): memory read error at "
        "CPU_SrcID#1_MC#1_Chan#1_DIMM#0 location: 3:1:0:-1, addr 473047662528, grain 5, syndrome 0  "
        "err_code:0x0101:0x0091 socket:1 imc:1 rank:0 bg:1 ba:3 row:0x16a3d col:0x3f8",
        [
            {
                "error_type": "Corrected",
                "count": 1,
                "timestamp": "2022-10-16T06:55:24+00:00",
                "uptime_s": None,
                "address": 473047662528,
                "normalized_address": None,
                "page_shift": None,
                "grain_bits": 5,
                "syndrome": 0,
                "message": "memory read error",
                "driver": "",
                "driver_detail": "err_code:0x0101:0x0091 socket:1 imc:1 rank:0 bg:1 ba:3 row:0x16a3d col:0x3f8",
                "location": {
                    "socket": 1,
                    "mc": 3,
                    "channel": 1,
                    "slot": 0,
                    "csrow": None,
                    "rank": 0,
                    "bank_group": 1,
                    "bank": 3,
                    "row": 92733,
                    "column": 1016,
                    "device": None,
                    "label": "CPU_SrcID#1_MC#1_Chan#1_DIMM#0",
                    "top_layer": 1,
                    "middle_layer": 0,
                    "lower_layer": None,
                },
                "mce": None,
                "kmsg_seq": None,
                "raw_lines": 1,
            }
        ],
    ),
    (
        "ras-mc-ctl-errors-skx-old-detail-openstreetmap-operations-759-row25",
        "rasmcctl",
        "25 2022-10-16 06:55:49 +0000 1 Corrected error(s): memory read error at "
        "CPU_SrcID#1_MC#1_Chan#1_DIMM#0 location: 3:1:0:-1, addr 468652556224, grain 5, syndrome 0  "
        "err_code:0x0101:0x0091 socket:1 imc:1 rank:0 bg:1 ba:3 row:0x169cf col:0x3f8",
        [
            {
                "error_type": "Corrected",
                "count": 1,
                "timestamp": "2022-10-16T06:55:49+00:00",
                "uptime_s": None,
                "address": 468652556224,
                "normalized_address": None,
                "page_shift": None,
                "grain_bits": 5,
                "syndrome": 0,
                "message": "memory read error",
                "driver": "",
                "driver_detail": "err_code:0x0101:0x0091 socket:1 imc:1 rank:0 bg:1 ba:3 row:0x169cf col:0x3f8",
                "location": {
                    "socket": 1,
                    "mc": 3,
                    "channel": 1,
                    "slot": 0,
                    "csrow": None,
                    "rank": 0,
                    "bank_group": 1,
                    "bank": 3,
                    "row": 92623,
                    "column": 1016,
                    "device": None,
                    "label": "CPU_SrcID#1_MC#1_Chan#1_DIMM#0",
                    "top_layer": 1,
                    "middle_layer": 0,
                    "lower_layer": None,
                },
                "mce": None,
                "kmsg_seq": None,
                "raw_lines": 1,
            }
        ],
    ),
]
