"""Real tracefs lines, each with its source, and the record fields they must decode to.

Sources: shared/reference/kernel-error-sources.md §3 (linux-edac list 2023; Xie XiuQi's
memory_failure_event patch), rasdaemon.md §2, lab-recipe.md (Debian 6.1 guest under QEMU,
mce-inject). "Synth." = built from the TP_printk format string, not captured.
"""

from memras.records import ErrorType

TRACE_CORPUS = [
    (
        "mc_event-skx-double-space-reference-s3",  # detail per kernel-error-sources.md §3/§4
        "<...>-1234 [001] ..... 99.000001: mc_event: 1 Corrected error: memory read error on"
        " CPU_SrcID#0_MC#1_Chan#0_DIMM#1 (mc:1 location:0:1:-1 address:0x91b2f55c0 grain:32"
        " syndrome:0x00000000  err_code:0x0080:0x0090 ProcessorSocketId:0x0"
        " MemoryControllerId:0x1 PhysicalRankId:0x0 Row:0x27b2 Column:0xa0 Bank:0x0"
        " BankGroup:0x5)",
        dict(
            error_type=ErrorType.CORRECTED,
            address=0x91B2F55C0,
            grain_bits=5,
            syndrome=0,
            message="memory read error",
            driver_detail="err_code:0x0080:0x0090 ProcessorSocketId:0x0 MemoryControllerId:0x1"
            " PhysicalRankId:0x0 Row:0x27b2 Column:0xa0 Bank:0x0 BankGroup:0x5",
            loc=dict(
                mc=1,
                socket=0,
                channel=0,
                slot=1,
                rank=0,
                row=0x27B2,
                column=0xA0,
                bank=0,
                bank_group=5,
                top_layer=0,
                middle_layer=1,
            ),
        ),
    ),
    (
        "mc_event-rasdaemon-md-s2-sb",
        "my task-name-77 [000] ..... 123.456789: mc_event: 2 Uncorrected errors: memory read"
        " error on DIMM A or DIMM B (mc:0 location:0:0:-1 address:0x12345000 grain:32"
        " syndrome:0x00000000 area:DRAM socket:0 rank:0)",
        dict(
            error_type=ErrorType.UNCORRECTED,
            count=1,  # "2 Uncorrected errors": one UE (_common.edac_error_count)
            address=0x12345000,
            message="memory read error",
            driver_detail="area:DRAM socket:0 rank:0",
            loc=dict(label="DIMM A or DIMM B", socket=0, rank=0, channel=None, slot=None),
        ),
    ),
    (
        "mce_record-lab-guest-debian-6.1",
        "kworker/1:0-22 [001] ..... 4.868755: mce_record: CPU: 0, MCGc/s: 0/0, MC7:"
        " 9c0000000000009f, IPID: 0000000000000000, ADDR/MISC/SYND:"
        " 0000000100201000/0000000000000086/0000000000000000, RIP: 00:<0000000000000000>,"
        " TSC: 52db3942f, PROCESSOR: 2:60fb1, TIME: 1795960395, SOCKET: 0, APIC: 0",
        dict(
            error_type=ErrorType.CORRECTED,
            address=0x100201000,
            message="memory read error",
            mce=dict(bank=7, status=0x9C0000000000009F, cpuvendor=2, cpuid=0x60FB1),
            loc=dict(socket=0, channel=None),
        ),
    ),
    (
        "mce_record-6.10-split-fields-synth",  # Synth. from the ~6.10 format in §3
        "kworker/0:1-9 [000] ..... 10.5: mce_record: CPU: 2, MCGc/s: 1000c14/5, MC9:"
        " bd000000000000c0, IPID: 0000000000000000, ADDR: 0000000100001000, MISC:"
        " 000000000000008c, SYND: 0000000000000000, RIP: 10:<ffffffff81000000>, TSC: 1f,"
        " PPIN: 1234abcd, vendor: 0, CPUID: 50654, time: 1700000000, socket: 1, APIC: 4,"
        " microcode: 2006e05, vendor data: a, b",
        dict(
            error_type=ErrorType.UNCORRECTED,
            address=0x100001000,
            grain_bits=12,
            message="memory scrubbing error",
            mce=dict(
                bank=9,
                ppin=0x1234ABCD,
                microcode=0x2006E05,
                cpu=2,
                cs=0x10,
                ip=0xFFFFFFFF81000000,
                mcgstatus=5,
                apicid=4,
                socketid=1,
            ),
            loc=dict(socket=1, channel=0),
        ),
    ),
    (
        "extlog-synth-reference-s3",
        "kworker/3:1-120 [003] ..... 812.2: extlog_mem_event: {1} corrected error: single-bit"
        " ECC physical addr: 000000090ba03400 (mask lsb: 6) node:0 card:4 module:0 rank:0"
        " bank:2 row:5156 column:1312 FRU: 00000000-0000-0000-0000-000000000000 ",
        dict(
            error_type=ErrorType.CORRECTED,
            address=0x90BA03400,
            grain_bits=6,
            message="single-bit ECC",
            driver="extlog",
            loc=dict(socket=0, rank=0, bank=2, row=5156, column=1312),
        ),
    ),
    (
        "extlog-old-node-space-synth",
        "kworker/3:1-120 [003] .... 812.2: extlog_mem_event: {2} fatal error: multi-bit ECC"
        " physical addr: 0000000012345678 (mask lsb: c) node: 1 card: 0 module: 3 rank: 1"
        " bank: 7 row: 10 column: 20 FRU: 00000000-0000-0000-0000-000000000000 DIMM_B2",
        dict(
            error_type=ErrorType.FATAL,
            address=0x12345000,
            grain_bits=12,
            loc=dict(socket=1, rank=1, bank=7, row=10, column=20, label="DIMM_B2"),
        ),
    ),
]

NON_MEMORY_TRACE = [
    (
        "mce_record-cache-error-synth",  # MCACOD 0x0135: cache hierarchy, not memory
        "kworker/0:1-9 [000] .... 1.0: mce_record: CPU: 0, MCGc/s: 0/0, MC1: 9000000000000135,"
        " ADDR/MISC: 0000000000000000/0000000000000000, RIP: 00:<0000000000000000>, TSC: 1,"
        " PROCESSOR: 0:306f2, TIME: 1, SOCKET: 0, APIC: 0",
    ),
]
