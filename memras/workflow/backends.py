"""What a hardware backend does, and how memras finds the installed ones.

A backend removes the old module once its blocks are offline and gets a new one in
(or waits for the operator to). Built-ins live in ``memras.plugins.backends`` and are
registered through the same ``memras.backends`` entry-point group as third-party ones:

    [project.entry-points."memras.backends"]
    mybmc = "mypkg.bmc:BmcBackend"

Every method must be idempotent against the machine's real state: after a crash the
runner calls :meth:`Backend.remove` again, and it must notice the module is already
gone rather than fail.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

from memras.errors import WorkflowError

if TYPE_CHECKING:
    from memras.host import Host
    from memras.workflow.detect import ModuleWatch

ENTRY_POINT_GROUP = "memras.backends"


@dataclass(frozen=True, slots=True)
class Target:
    """The module being replaced, as the workflow resolved it at selection time."""

    dimm_id: str
    label: str
    locator: str
    serial: str
    part: str
    blocks: tuple[int, ...]
    block_size: int
    acpi_device: str | None = None  # "PNP0C80:00"
    slot: str | None = None  # ACPI _UID (the QEMU slot number)
    # The module's blocks as kernel objects (sysfs inode numbers, same order as
    # ``blocks``): a block re-created with the same number is another object
    # (memras.workflow.detect). Empty for replacements recorded before they were kept.
    block_ids: tuple[int, ...] = ()
    acpi_path: str | None = None  # the ACPI namespace path, e.g. \_SB_.MHPC.MP01
    # a CXL memdev: its serial, PCI function, slot and regions as they were at selection
    # (memras.workflow.cxl.resolve); None for a DIMM or ACPI memory device
    cxl: dict[str, Any] | None = None

    @property
    def start(self) -> int:
        return min(self.blocks) * self.block_size if self.blocks else 0

    @property
    def size(self) -> int:
        return len(self.blocks) * self.block_size

    def as_dict(self) -> dict[str, Any]:
        return {"dimm_id": self.dimm_id, "label": self.label, "locator": self.locator,
                "serial": self.serial, "part": self.part, "blocks": list(self.blocks),
                "block_size": self.block_size, "acpi_device": self.acpi_device,
                "slot": self.slot, "block_ids": list(self.block_ids),
                "acpi_path": self.acpi_path, "cxl": self.cxl}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Target:
        return cls(**{**data, "blocks": tuple(data.get("blocks", ())),
                      "block_ids": tuple(data.get("block_ids", ()))})

    def identity(self) -> dict[str, Any]:
        """What identifies the module: ACPI device, path and slot, blocks, serial."""
        out: dict[str, Any] = {
            "acpi_device": self.acpi_device, "acpi_path": self.acpi_path, "slot": self.slot,
            "blocks": list(self.blocks),
            "range": [hex(self.start), hex(self.start + self.size - 1)] if self.blocks
            else None, "serial": self.serial or None}
        if self.cxl:
            out["cxl"] = {**{k: self.cxl.get(k) for k in ("memdev", "host", "slot")},
                          "regions": [r["name"] for r in self.cxl.get("regions", [])]}
        return out


@dataclass
class BackendContext:
    """What a backend gets: the host, options, a way to talk to the operator, a cancel."""

    host: Host
    options: dict[str, Any] = field(default_factory=dict)
    say: Callable[[str], None] = print
    cancel: threading.Event = field(default_factory=threading.Event)
    timeout_s: float = 300.0
    # the runner's watch of the module's uevents, opened before remove() is called
    watch: ModuleWatch | None = None


@dataclass(frozen=True, slots=True)
class BackendResult:
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """Remove a memory module and get a new one in.

    Class flags: ``needs_operator`` (a person must act; the CLI needs a TTY or --yes),
    ``inserts`` (the backend itself inserts the new module; otherwise it waits for one).
    """

    name: ClassVar[str] = "?"
    needs_operator: ClassVar[bool] = False
    inserts: ClassVar[bool] = False

    def __init__(self, ctx: BackendContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def can_remove(self, target: Target) -> BackendResult:
        """Whether this backend can remove ``target`` here (a preflight line)."""

    @abstractmethod
    def remove(self, target: Target) -> BackendResult:
        """Remove the module (its blocks are already offline); wait until it is gone.

        Raises WorkflowError on failure (e.g. ACPI _OST 0x82 busy, timeout).
        """

    @abstractmethod
    def insert(self, target: Target) -> BackendResult:
        """Get the new module in (or wait for the operator); ``data["blocks"]`` lists
        the new module's memory blocks once the kernel has added them."""


def available_backends() -> dict[str, str]:
    """Installed backend names -> "module:Class", without importing them."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_backend(name: str, ctx: BackendContext) -> Backend:
    """Instantiate the backend called ``name``; a clear error when unknown or broken."""
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        known = ", ".join(sorted(available_backends())) or "none"
        raise WorkflowError(f"unknown backend {name!r}", hint=f"installed backends: {known}")
    try:
        cls = matches[0].load()
    except Exception as exc:  # a broken plugin must not take memras down
        raise WorkflowError(f"backend {name!r} failed to load: {type(exc).__name__}: {exc}",
                            hint="reinstall the plugin or pick another --backend") from None
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise WorkflowError(f"backend {name!r} is not a memras Backend")
    return cls(ctx)
