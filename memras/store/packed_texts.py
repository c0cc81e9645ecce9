"""A stored error's long texts — message, driver detail, raw input — packed into one
compressed column (``memras_error.texts``) when that is smaller.

Why: the raw text (a kernel log block, an mcelog record) was most of a row: ~550 of
~920 bytes per event on the real corpus's mix (bench/storage_per_event.py), and the
driver detail and message are mostly substrings of it. One short record compresses
poorly on its own (zlib: 548 -> 283 bytes), so deflate starts from a preset
dictionary: text the kernel's RAS code prints (format strings of EDAC, mce, GHES/CPER,
memory_failure, the trace events, mcelog), typed here by hand — no real log's values.
With it the three texts take ~140 bytes. Rows that would not shrink (short tests'
texts, an unusual line) keep their plain columns and ``texts`` NULL.

Format of ``texts``: one version byte (the dictionary's: never changed once released;
a new dictionary is a new version, and old rows keep decoding with theirs), then a raw
deflate stream of ``"<len(message)>,<len(driver_detail)>:" + message + driver_detail +
raw``, lengths in bytes of UTF-8 (with surrogates passed through, as the store keeps
undecodable input). Readers: :func:`unpack`; the packed row's plain columns are ''.
"""

from __future__ import annotations

import zlib

VERSION = 1
_WBITS = 13  # 8 KiB window: the dictionary and a record fit; copying the state is cheap
_LEVEL = 6
MIN_BYTES = 96  # shorter texts are stored plain: the header and stream would not pay

DICTIONARY_V1 = b"""\
 kernel: [Hardware Error]: Corrected error, no action required.
 kernel: [Hardware Error]: CPU:0 (19:1:1) MC17_STATUS[Over|CE|MiscV|AddrV|-|-|SyndV|CECC|-|-|-]: 0x
 kernel: [Hardware Error]: Error Addr: 0x
 kernel: [Hardware Error]: IPID: 0x, Syndrome: 0x
 kernel: [Hardware Error]: Unified Memory Controller Ext. Error Code: 0, DRAM ECC error.
 kernel: [Hardware Error]: cache level: L3/GEN, tx: GEN, mem-tx: RD
 kernel: {1}[Hardware Error]: Hardware error from APEI Generic Hardware Error Source: 1
 kernel: {1}[Hardware Error]: It has been corrected by h/w and requires no further action
 kernel: {1}[Hardware Error]: event severity: corrected
 kernel: {1}[Hardware Error]:  Error 0, type: corrected
 kernel: {1}[Hardware Error]:  fru_text: Card03, ChnB, DIMM0
 kernel: {1}[Hardware Error]:   section_type: memory error
 kernel: {1}[Hardware Error]:   error_status: 0x0000000000000400
 kernel: {1}[Hardware Error]:   physical_address: 0x
 kernel: {1}[Hardware Error]:   node: 0 card: 0 module: 0 rank: 0 bank: 0 device: 0 row: 0 column: 0
 kernel: {1}[Hardware Error]:   error_type: 2, single-bit ECC
 kernel: EDAC MC0: 1 CE memory read error on CPU_SrcID#0_MC#0_Chan#0_DIMM#0 (channel:0 slot:0 \
page:0x offset:0x grain:32 syndrome:0x0 - err_code:0x0000:0x009f socket:0 imc:0 rank:0 bg:0 ba:0 \
row:0x col:0x retry_rd_err_log[0001a209 00000000 00000000 00000000 00000000 00000000 00000000])
 kernel: EDAC MC0: 1 UE memory scrubbing error on CPU_SrcID#0_Ha#0_Chan#0_DIMM#0 (channel:0 \
slot:0 page:0x offset:0x0 grain:32 syndrome:0x0 - area:DRAM err_code:0001:0090 socket:0 ha:0 \
channel_mask:1 rank:0)
 kernel: EDAC skx MC0: HANDLING MCE MEMORY ERROR
 kernel: EDAC sbridge MC0: HANDLING MCE MEMORY ERROR
 kernel: EDAC sbridge MC0: CPU 0: Machine Check Event: 0 Bank 7: 8c00004000010090
 kernel: EDAC sbridge MC0: TSC 0
 kernel: EDAC sbridge MC0: ADDR
 kernel: EDAC sbridge MC0: MISC
 kernel: EDAC sbridge MC0: PROCESSOR 0:306e4 TIME  SOCKET 0 APIC 0
 kernel: EDAC amd64: ERROR_ADDRESS= 0x
 kernel: EDAC MC0: CE page 0x, offset 0x, grain 0, syndrome 0x, row 0, channel 0, \
label "": amd64_edac
 kernel: EDAC MC0: 1 CE Unknown error on unknown memory (page:0x0 offset:0x0 grain:0 syndrome:0x0)
 kernel: mce: [Hardware Error]: Machine check events logged
 kernel: mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 1: bd80000000100134
 kernel: mce: [Hardware Error]: RIP 10:<ffffffff> {copy_page+0x5/0x10}
 kernel: mce: [Hardware Error]: TSC 0 ADDR  MISC 86 PPIN
 kernel: mce: [Hardware Error]: PROCESSOR 0:806f8 TIME  SOCKET 0 APIC 0 microcode 2b000
 kernel: mce: [Hardware Error]: Run the above through 'mcelog --ascii'
 kernel: mce: Uncorrected hardware memory error in user-access at
 kernel: Memory failure: 0x: recovery action for dirty LRU page: Recovered
 kernel: Memory failure: 0x: recovery action for clean LRU page: Recovered
 kernel: Memory failure: 0x: recovery action for huge page: Delayed
 kernel: Memory failure: 0x: Sending SIGBUS to  due to hardware memory corruption
 kernel: Memory failure: 0x: Killing  due to hardware memory corruption
 kernel: Memory failure: 0x: already hardware poisoned
 kernel: Memory failure: 0x: unhandlable page
 kernel: Memory failure: 0x: free buddy page: Recovered
 kernel: soft offline: 0x: page migration failed
 mc_event: 1 Corrected error: memory read error on  (mc:0 location:0:0:-1 address:0x grain:32 \
syndrome:0x area:DRAM socket:0 rank:0)
 mce_record: CPU: 0, MCGc/s: 1c09/0, MC8: 8c00004000010090, IPID: 00000000 ADDR: , MISC: , SYND: \
00000000, RIP: 00:<0000000000000000>, TSC: 0, PPIN: 0, vendor: 0, CPUID: 0x, time: , socket: 0, \
APIC: 0, microcode: 0
 memory_failure_event: pfn 0x page type free buddy page action result Recovered
Hardware event. This is not a software error.
MCE 0
CPU 0 BANK 8
TSC
ADDR
MISC
TIME  Mon Jan  1 00:00:00 2024
MCG status:
MCi status:
Corrected error
Error enabled
MCi_MISC register valid
MCi_ADDR register valid
MCA: MEMORY CONTROLLER RD_CHANNEL0_ERR
Transaction: Memory read error
STATUS  MCGSTATUS 0
MCGCAP  APICID 0 SOCKETID 0
PPIN
MICROCODE
CPUID Vendor Intel Family 6 Model 106 Step 6
Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec
"""
_DICTIONARIES = {VERSION: DICTIONARY_V1}
# A compressor primed with the dictionary once; each text copies it (priming per text
# cost more than compressing).
_PRIMED = zlib.compressobj(_LEVEL, zlib.DEFLATED, -_WBITS, 8, zlib.Z_DEFAULT_STRATEGY,
                           zdict=DICTIONARY_V1)
_HEAD = bytes([VERSION])


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def pack(message: str, driver_detail: str, raw: str) -> bytes | None:
    """The three texts as one compressed value, or None when that is not smaller (the
    caller then stores them plain, as it does a text that is not a str)."""
    if type(message) is not str or type(driver_detail) is not str or type(raw) is not str:
        return None
    m, d, r = _utf8(message), _utf8(driver_detail), _utf8(raw)
    plain = len(m) + len(d) + len(r)
    if plain < MIN_BYTES:
        return None
    c = _PRIMED.copy()
    body = c.compress(b"%d,%d:" % (len(m), len(d)) + m + d + r) + c.flush()
    if len(body) + 1 >= plain:
        return None
    return _HEAD + body


def unpack(value: bytes) -> tuple[str, str, str]:
    """(message, driver_detail, raw) of a :func:`pack` value."""
    data = bytes(value)
    dictionary = _DICTIONARIES.get(data[0]) if data else None
    if dictionary is None:
        raise ValueError(f"unknown packed-text version {data[:1]!r}")
    d = zlib.decompressobj(-_WBITS, zdict=dictionary)
    text = d.decompress(data[1:]) + d.flush()
    head, _, rest = text.partition(b":")
    lm, ld = (int(n) for n in head.split(b","))
    return (rest[:lm].decode("utf-8", "surrogatepass"),
            rest[lm:lm + ld].decode("utf-8", "surrogatepass"),
            rest[lm + ld:].decode("utf-8", "surrogatepass"))
