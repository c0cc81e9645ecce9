"""Who a host is in the central store: its ``/etc/machine-id`` (under ``--root``) and name.

The machine id (machine-id(5): 32 lowercase hex digits, written once at install) is the
key every shipped row carries: it survives renames and re-addressing, where a hostname
does not. The hostname is shown beside it. A host without a machine id cannot ship: two
hosts under one made-up key would overwrite each other's rows, which is worse than none.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

from memras.errors import UsageError

_MACHINE_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class HostIdentity:
    host_id: str  # the machine id
    hostname: str


def host_identity(root: Path | str = "/") -> HostIdentity:
    """The identity of the host rooted at ``root``; UsageError when it has no machine id."""
    root = Path(root)
    path = root / "etc" / "machine-id"
    try:
        text = path.read_text(errors="replace").strip()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}",
                         hint="shipping needs the host's machine id: systemd-machine-id-setup "
                              "creates it") from None
    if not _MACHINE_ID.fullmatch(text):
        raise UsageError(f"{path} holds no machine id (32 hex digits): {text[:40]!r}",
                         hint="see machine-id(5); systemd-machine-id-setup creates one")
    hostname = ""
    if root != Path("/"):  # a captured or simulated host: its own name, if it has one
        try:
            hostname = (root / "etc" / "hostname").read_text(errors="replace").strip()
        except OSError:
            hostname = ""
    return HostIdentity(text, hostname or socket.gethostname())
