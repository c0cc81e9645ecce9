"""Named lab scenarios: ``memras lab run NAME`` and tests/lab run the same functions.

The registry (``@scenario``, :data:`SCENARIOS`, :func:`run_scenario`, the report) is
:mod:`memras.lab.scenarios.registry`; each subject module registers its scenarios when
it is imported, which this package does below, so importing it gives every scenario:

* ``boot``: boot-facts; ``hotplug``: replace-dimm, offline-busy (raw QMP hotplug);
* ``mce``: mce-qemu, mce-sw; ``parity``: parity (memras blocks/locate vs lsmem);
* ``ingest``: ingest (memras watch in the guest); ``latency``: ingest-latency;
  ``alerts``: alerts (with
  ``webhook_receiver`` on the host); ``rasdaemon``: rasdaemon interop;
* ``capacity``: capacity-policy (with the ``workload`` driver);
* ``replace``: replace-no-downtime; ``failures``: replace-offline-refused,
  replace-crash-abort; ``fastswap``: replace-fast-swap; ``resume``:
  replace-kill-resume; ``numa``: numa-replace (the two-node guest); ``pstore``: pstore (a guest
  booted with ``pstore.RAMOOPS_CMDLINE``: a fatal MCE, the reset, the ramoops dump).

``common`` holds what several share (the guest's work directory, DIMM lookups).
"""

from __future__ import annotations

from memras.lab.scenarios import (  # noqa: F401 (imported to register their scenarios)
    alerts,
    boot,
    capacity,
    failures,
    fastswap,
    hotplug,
    ingest,
    latency,
    mce,
    numa,
    parity,
    pstore,
    rasdaemon,
    replace,
    resume,
)
from memras.lab.scenarios.registry import (
    SCENARIOS,
    ScenarioFailed,
    ScenarioReport,
    Step,
    run_scenario,
    scenario,
    show_report,
)

__all__ = ["SCENARIOS", "ScenarioFailed", "ScenarioReport", "Step", "run_scenario", "scenario",
           "show_report"]
