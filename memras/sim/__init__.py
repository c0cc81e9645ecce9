"""The simulated server: profiles that write a kernel tree, and a kernel that obeys it.

``create(profile, root)`` writes a complete synthetic server under ``root``;
``load(root)`` gives back its spec; :class:`memras.sim.kernel.SimulatedKernel`
receives every write memras makes under such a root and answers as the kernel
would (see docs/hotplug-internals.md, section workflow-kernel-rules, for what is
modelled and where the model is not faithful). :mod:`memras.sim.actions` holds the
things that are not kernel writes: inserting a DIMM, injecting errors, flags.
"""

from __future__ import annotations

from pathlib import Path

from memras.host._fs import register_simulator
from memras.sim.kernel import SimulatedKernel
from memras.sim.profiles import PROFILES, SimServer, create
from memras.sim.spec import ServerSpec
from memras.sim.state import read_state

register_simulator(lambda root: SimulatedKernel(root).write)

__all__ = ["PROFILES", "SimServer", "create", "load"]


def load(root: str | Path) -> ServerSpec:
    """The spec a simulated server was created from (raises UsageError if not one)."""
    return read_state(root).spec
