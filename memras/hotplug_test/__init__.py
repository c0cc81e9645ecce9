"""``memras hotplug-test``: regression, integration and performance tests of memory hotplug.

What the kernel selftest (mem-on-off-test.sh) does, made strict, plus what it lacks:
only hot-pluggable (Movable) blocks are cycled; every failed expectation fails the run
(non-zero exit); a patterned workload proves page contents survive migration;
uevents and zones are asserted per state change; the notifier error injector and a
soft-offlined page exercise the failure paths; ACPI eject and re-add exercise device
removal; every write is timed (p50/p90/p99/max per block) and the in-use bytes of
each offlined block give the migration throughput.

Modules: model (config, checks, report), select (which blocks), pressure (the
workload), usage (in-use bytes per block), uevents, inject, runner, render.
"""

from memras.hotplug_test.model import CHECKS, Config, Report, Want
from memras.hotplug_test.runner import HotplugTest, plan

__all__ = ["CHECKS", "Config", "HotplugTest", "Report", "Want", "plan"]
