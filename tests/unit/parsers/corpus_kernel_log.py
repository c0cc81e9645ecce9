# ruff: noqa: E501  (real log lines are kept verbatim, one per line)
"""Real kernel-log blocks, each cited, and the ONE record (or none) each must yield.

Sources: shared/reference/kernel-error-sources.md §4 (grondo/edac-utils#10; a public
log-parser source quoting a 2023 skx ADXL report; andikleen/mcelog#74; LKML Toralf
Förster 2021-06-09; prometheus/node_exporter#3511; Robert Richter linux-edac 2020;
s905060 SRE handbook; illinois-scicomp/machine-shop-maintenance#66), lab-recipe.md and
hotplug-and-qemu.md §4 (lab guest). "Synth." = from the kernel format string.
"""

from memras.records import ErrorType

KLOG_CORPUS = [
    (
        "skx-old-detail-mcelog-74",
        "[  100.1] EDAC MC0: 1 CE memory read error on CPU_SrcID#0_MC#0_Chan#0_DIMM#0 (channel:0"
        " slot:0 page:0x12345 offset:0x0 grain:32 syndrome:0x0 -  err_code:0000:009f socket:0"
        " imc:0 rank:0 bg:0 ba:3 row:dad3 col:3c0)",
        [
            dict(
                address=0x12345000,
                uptime_s=100.1,
                loc=dict(socket=0, rank=0, bank_group=0, bank=3, row=0xDAD3, column=0x3C0),
            )
        ],
    ),
    (
        "amd64-mce_amd-lkml-forster-2021",
        """\
[Hardware Error]: Corrected error, no action required.
[Hardware Error]: CPU:0 (19:21:0) MC17_STATUS[Over|CE|MiscV|AddrV|-|-|SyndV|CECC|-|-|-]: 0xdc2040000000011b
[Hardware Error]: Error Addr: 0x000000031fb566e0
[Hardware Error]: IPID: 0x0000009600050f00, Syndrome: 0x33fa01000a800101
[Hardware Error]: Unified Memory Controller Ext. Error Code: 0, DRAM ECC error.
EDAC MC0: 1 CE on mc#0csrow#1channel#0 (csrow:1 channel:0 page:0xcaed59 offset:0x8e0 grain:64 syndrome:0x100)
[Hardware Error]: cache level: L3/GEN, tx: GEN, mem-tx: RD""",
        [
            dict(
                address=0xCAED598E0,
                normalized_address=0x31FB566E0,
                syndrome=0x100,
                message="",
                grain_bits=6,
                mce=dict(status=0xDC2040000000011B, bank=17, ipid=0x9600050F00, cpuvendor=2),
                raw_lines=7,
                loc=dict(mc=0, csrow=1, channel=0),
            )
        ],
    ),
    (
        "ghes-old-node-space-plus-ghes_edac-richter-2020",
        """\
[ 5.0] {2}[Hardware Error]: Hardware error from APEI Generic Hardware Error Source: 1
[ 5.0] {2}[Hardware Error]:  Error 0, type: recoverable
[ 5.0] {2}[Hardware Error]:   section_type: memory error
[ 5.0] {2}[Hardware Error]:   physical_address: 0x0000000966a9b3000
[ 5.0] {2}[Hardware Error]:   physical_address_mask: 0xffffffffffffffc0
[ 5.0] {2}[Hardware Error]:   node: 0 card: 0 module: 0 rank: 1 bank: 0 row: 7 column: 13
[ 5.0] {2}[Hardware Error]:   DIMM location: N0 DIMM_A0
[ 5.0] EDAC MC0: 1 CE Single-bit ECC on unknown label (node:0 card:0 module:0 rank:1 bank:0 col:13 bit_pos:16 DIMM location:N0 DIMM_A0 page:0x966a9b3 offset:0x0 grain:1 syndrome:0x0 - APEI location: node:0 status(0x0000000000000400): Storage error in DRAM memory)""",
        [
            dict(
                error_type=ErrorType.UNCORRECTED,
                address=0x966A9B3000,
                grain_bits=6,
                raw_lines=8,
                loc=dict(socket=0, rank=1, bank=0, row=7, column=13, label="N0 DIMM_A0", mc=0),
            )
        ],
    ),
    (
        "mce-core-lab-guest",
        """\
[    4.860001] mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 7: 9c0000000000009f
[    4.860002] mce: [Hardware Error]: TSC 52db3942f ADDR 100201000 MISC 86""",
        [
            dict(
                error_type=ErrorType.CORRECTED,
                address=0x100201000,
                grain_bits=6,
                driver="mce",
                message="memory read error",
                uptime_s=4.860001,
                mce=dict(status=0x9C0000000000009F, bank=7, tsc=0x52DB3942F, misc=0x86),
                loc=dict(socket=None, channel=None),
            )
        ],
    ),
    (
        # Two polled CEs with one status 0.3 s apart (the lab guest's poller logs QEMU
        # injections like this): two faults, although inside the 1 s grouping window.
        "mce-core-two-ces-same-status-within-a-second",
        """\
[   61.100001] mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 7: 9c0000000000009f
[   61.100002] mce: [Hardware Error]: TSC 7a1b2c3d4e ADDR 100201000 MISC 86
[   61.400001] mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 7: 9c0000000000009f
[   61.400002] mce: [Hardware Error]: TSC 7a9f8e7d6c ADDR 100262000 MISC 86""",
        [
            dict(address=0x100201000, uptime_s=61.100001, raw_lines=2,
                 mce=dict(status=0x9C0000000000009F, tsc=0x7A1B2C3D4E)),
            dict(address=0x100262000, uptime_s=61.400001, raw_lines=2,
                 mce=dict(status=0x9C0000000000009F, tsc=0x7A9F8E7D6C)),
        ],
    ),
    (
        # skx_edac's own register lines, then the core's print of the same machine check
        # (mce=print_all): one fault, one record; the repeated print is context.
        "skx-driver-lines-then-core-print-of-the-same-mce",
        """\
[  812.000001] EDAC skx MC1: HANDLING MCE MEMORY ERROR
[  812.000002] EDAC skx MC1: CPU 0: Machine Check Event: 0x0 Bank 15: 0x8c00004200800090
[  812.000003] EDAC skx MC1: TSC 0x3c5a1f2e77 ADDR 0x91b2f55c0 MISC 0x9001
[  812.000004] EDAC MC1: 1 CE memory read error on CPU_SrcID#0_MC#1_Chan#0_DIMM#1 (channel:0 slot:1 page:0x91b2f5 offset:0x5c0 grain:32 syndrome:0x0 -  err_code:0x0080:0x0090  SystemAddress:0x91b2f55c0 ProcessorSocketId:0x0 MemoryControllerId:0x1 ChannelAddress:0x11365eac0 ChannelId:0x0 RankAddress:0x226cbd40 PhysicalRankId:0x0 DimmSlotId:0x1 DimmRankId:0x0 Row:0x27b2 Column:0xa0 Bank:0x0 BankGroup:0x5 ChipSelect:0x5)
[  812.000005] mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 15: 8c00004200800090
[  812.000006] mce: [Hardware Error]: TSC 3c5a1f2e77 ADDR 91b2f55c0 MISC 9001""",
        [
            dict(error_type=ErrorType.CORRECTED, address=0x91B2F55C0, driver="skx_edac",
                 raw_lines=4, mce=dict(status=0x8C00004200800090, bank=15, tsc=0x3C5A1F2E77)),
        ],
    ),
    (
        "mce-core-srao-with-processor-line-hotplug-qemu-s4",
        """\
mce: [Hardware Error]: CPU 0: Machine Check Exception: 5 Bank 9: bd000000000000c0
mce: [Hardware Error]: RIP !INEXACT! 10:<ffffffff81e3b4a2>
mce: [Hardware Error]: TSC 1234 ADDR 100001000 MISC 8c
mce: [Hardware Error]: PROCESSOR 0:106a5 TIME 1700000000 SOCKET 0 APIC 0 microcode 1""",
        [
            dict(
                error_type=ErrorType.UNCORRECTED,
                address=0x100001000,
                grain_bits=12,
                message="memory scrubbing error",
                mce=dict(
                    status=0xBD000000000000C0,
                    bank=9,
                    mcgstatus=5,
                    cpuid=0x106A5,
                    walltime=1700000000,
                    microcode=1,
                ),
                loc=dict(socket=0, channel=0),
            )
        ],
    ),
    (
        "kmsg-raw-memory-failure-lab",
        "3,812,5123456,-;Memory failure: 0x100001: recovery action for free buddy page:"
        " Recovered\n SUBSYSTEM=memory",
        [
            dict(
                pfn=0x100001,
                page_type="free buddy page",
                action_result="Recovered",
                kmsg_seq=812,
                uptime_s=5.123456,
            )
        ],
    ),
    (
        "old-memory-failure-format-synth",
        "Feb 23 03:28:16 host kernel: MCE 0x8b5bf: dirty LRU page recovery: Recovered",
        [dict(pfn=0x8B5BF, page_type="dirty LRU", action_result="Recovered")],
    ),
    (
        "pre-3.5-amd76x",
        "EDAC MC0: CE page 0x283, offset 0xce0, grain 8, syndrome 0x6ec3, row 0, channel 1"
        ' "DIMM_B1": amd76x_edac',
        [
            dict(
                address=0x283CE0,
                grain_bits=3,
                syndrome=0x6EC3,
                driver="amd76x_edac",
                loc=dict(mc=0, csrow=0, channel=1, label="DIMM_B1"),
            )
        ],
    ),
    (
        "pre-3.10-sb_edac-one-liner-FATAL-word-synth",
        'EDAC MC0: CE row 1, channel 0, label "DIMM_A2": 1 Unknown error(s): memory scrubbing'
        " on FATAL area:DRAM err_code:0008:00c1 addr = 0x1b3da7000 => socket=0, Channel=0"
        "(mask=1), rank=1",
        [
            dict(
                error_type=ErrorType.CORRECTED,
                address=0x1B3DA7000,
                loc=dict(mc=0, csrow=1, channel=0, label="DIMM_A2"),
            )
        ],
    ),
    (
        "ue-without-syndrome-synth",
        "Feb 23 03:28:16 host kernel: [ 77.7] EDAC MC2: 1 UE memory scrubbing error on"
        " CPU_SrcID#1_MC#0_Chan#2_DIMM#0 (channel:2 slot:0 page:0x1000 offset:0x40 grain:32 -"
        "  err_code:0x0000:0x00c2 ProcessorSocketId:0x1)",
        [
            dict(
                error_type=ErrorType.UNCORRECTED,
                syndrome=None,
                address=0x1000040,
                uptime_s=77.7,
                loc=dict(mc=2, socket=1, channel=2, slot=0),
            )
        ],
    ),
    (
        "journal-iso-unknown-memory-empty-msg-synth",
        "2024-03-01T10:00:00+0100 host kernel: EDAC MC0: 3 CE on unknown memory (page:0x10"
        " offset:0x20 grain:8 syndrome:0x5)",
        [dict(count=3, address=0x10020, message="", loc=dict(label="unknown memory"))],
    ),
]

# Lines that must produce nothing (decoys and status lines), each cited.
KLOG_DECOYS = [
    "[Mon Jan 27 19:27:15 2020] mce: [Hardware Error]: Machine check events logged",
    "[Hardware Error]: Machine check events logged",  # pre-4.x without "mce: "
    # Synth. status lines in the shape rasdaemon/mcelog print them
    "Feb 23 03:28:16 host rasdaemon[811]: rasdaemon: mc_event trace enabled",
    "Feb 23 03:28:16 host mcelog[2226]: mcelog: failed to prefill DIMM database from DMI data",
    "[    2.5] EDAC MC0: Giving out device to module skx_edac controller Skylake Socket#0 IMC#0",
    "[    2.6] EDAC igen6: v2.5.1",  # Synth. driver banner
    "[    2.7] EDAC igen6 MC0: ADDR 0x7fff0000 ECCLOG 0x0",  # Synth. igen6-style boot report
]
