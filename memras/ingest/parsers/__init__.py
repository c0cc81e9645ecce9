"""Pure parsers: kernel/firmware text and rasdaemon rows → memras records.

Every parser is a pure function (or, for the multi-line kernel log, a small stateful
feeder) that never raises on bad input: it returns None, or counts the line in a
:class:`ParserStats`. A machine check that is not a memory error is returned as
:class:`NonMemoryMce` (trace) or counted (kernel log, mcelog), never stored.
"""

from memras.ingest.parsers._common import NonMemoryMce, ParserStats
from memras.ingest.parsers.cxl import (
    from_cxl_dram_row,
    from_cxl_general_media_row,
    from_cxl_row,
    parse_cxl_event,
)
from memras.ingest.parsers.dedup import dedup_key, dedup_keys
from memras.ingest.parsers.ftrace import parse_trace_line, split_trace_line
from memras.ingest.parsers.kernel_log import KernelLogParser, parse_kernel_log
from memras.ingest.parsers.mcelog import parse_mcelog
from memras.ingest.parsers.prefixes import strip_prefixes
from memras.ingest.parsers.rasdaemon_rows import (
    from_extlog_row,
    from_mc_event_row,
    from_mce_record_row,
    from_memory_failure_row,
    parse_ras_mc_ctl_error,
)
from memras.ingest.parsers.trace_events import (
    parse_extlog_mem_event,
    parse_mc_event,
    parse_mce_record,
    parse_memory_failure_event,
)

__all__ = [
    "KernelLogParser",
    "NonMemoryMce",
    "ParserStats",
    "dedup_key",
    "from_cxl_dram_row",
    "from_cxl_general_media_row",
    "from_cxl_row",
    "dedup_keys",
    "from_extlog_row",
    "from_mc_event_row",
    "from_mce_record_row",
    "from_memory_failure_row",
    "parse_cxl_event",
    "parse_extlog_mem_event",
    "parse_kernel_log",
    "parse_mc_event",
    "parse_mce_record",
    "parse_mcelog",
    "parse_ras_mc_ctl_error",
    "parse_memory_failure_event",
    "parse_trace_line",
    "split_trace_line",
    "strip_prefixes",
]
