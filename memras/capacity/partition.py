"""Dynamic partitioning: move memory from guest A to guest B on one host.

Decisions, in order:

1. What A gives: shrink one virtio-mem device whose requested size covers SIZE;
   otherwise whole pc-dimms whose sizes add up to exactly SIZE (fewest devices).
   Anything else is refused: a partial DIMM cannot be unplugged.
2. Can A spare it: A's ``MemAvailable`` (read through the QEMU guest agent,
   ``guest-file-read`` of /proc/meminfo) minus SIZE must stay >= the reserve. With
   no agent socket memras cannot know, so it refuses unless ``--force`` says the
   operator checked.
3. What B takes: grow a virtio-mem device with enough headroom (max-size), else
   hot-add new pc-dimms of the same sizes.
4. Rollback: if B cannot take it, A gets its memory back (virtio-mem re-grown,
   DIMMs re-added with their ids, sizes and slots).

Every step is audited (``partition.*``) through :class:`memras.capacity.record.Recorder`.
"""

from __future__ import annotations

import base64
import json
import random
import socket
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from memras.capacity import vm
from memras.errors import UsageError
from memras.host.meminfo import parse_meminfo
from memras.text import format_bytes

MAX_DIMMS_PER_MOVE = 8


@dataclass(frozen=True, slots=True)
class Removal:
    kind: str  # virtio-mem | dimms
    devices: tuple[vm.MemoryDevice, ...]
    size: int


def plan_removal(devices: list[vm.MemoryDevice], size: int) -> Removal:
    """What A gives for ``size`` bytes (see the module docstring, step 1)."""
    for dev in devices:
        if dev.type == "virtio-mem" and (dev.requested_size or 0) >= size:
            return Removal("virtio-mem", (dev,), size)
    dimms = sorted((d for d in devices if d.type == "dimm"), key=lambda d: -d.size)
    for count in range(1, min(len(dimms), MAX_DIMMS_PER_MOVE) + 1):
        for combo in combinations(dimms, count):
            if sum(d.size for d in combo) == size:
                return Removal("dimms", combo, size)
    have = ", ".join(f"{d.id} {format_bytes(d.size)}" for d in devices) or "no memory devices"
    raise UsageError(f"the source VM cannot give exactly {format_bytes(size)}: {have}",
                     hint="move whole pc-dimms, or use a virtio-mem device")


def pick_receiver(devices: list[vm.MemoryDevice], size: int) -> vm.MemoryDevice | None:
    """A virtio-mem device of B with ``size`` headroom, or None (hot-add DIMMs)."""
    for dev in devices:
        if dev.type == "virtio-mem" and dev.max_size is not None and \
                dev.max_size - (dev.requested_size or 0) >= size:
            return dev
    return None


# --- QEMU guest agent: MemAvailable ------------------------------------------------------


def guest_meminfo(agent_socket: str, timeout: float = 10.0) -> dict[str, int]:
    """/proc/meminfo of a guest through qemu-ga (guest-file-open/read/close)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(agent_socket)
        except OSError as exc:
            raise UsageError(f"cannot reach the guest agent at {agent_socket}: {exc.strerror}",
                             hint="start qemu-ga in the guest, or pass --force") from None
        reader = sock.makefile("rb")
        token = random.randrange(1 << 30)
        sock.sendall(json.dumps({"execute": "guest-sync", "arguments": {"id": token}}).encode()
                     + b"\n")
        # A reply an earlier client left unread in the channel may come first: qemu-ga's
        # protocol is to read until guest-sync's own id comes back.
        while (line := reader.readline()) and json.loads(line).get("return") != token:
            pass
        handle = _ga(sock, reader, "guest-file-open", {"path": "/proc/meminfo", "mode": "r"})
        data = _ga(sock, reader, "guest-file-read", {"handle": handle, "count": 65536})
        _ga(sock, reader, "guest-file-close", {"handle": handle})
    return parse_meminfo(base64.b64decode(data.get("buf-b64", "")).decode(errors="replace"))


def _ga(sock: socket.socket, reader: Any, command: str, arguments: dict[str, Any]) -> Any:
    sock.sendall(json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n")
    reply = json.loads(reader.readline() or b"{}")
    if "error" in reply or "return" not in reply:
        raise UsageError(f"guest agent {command} failed: {reply.get('error', reply)}")
    return reply["return"]


def spare_check(size: int, reserve: int, meminfo: dict[str, int] | None,
                force: bool) -> tuple[bool, str]:
    """Whether A can give ``size`` and still keep ``reserve`` bytes available."""
    if meminfo is None:
        if force:
            return True, "--force: source MemAvailable not checked (no guest agent)"
        return False, ("cannot see the source's MemAvailable without a guest agent "
                       "(--from-agent SOCKET); pass --force if you checked it yourself")
    available = meminfo.get("MemAvailable", meminfo.get("MemFree", 0))
    after = available - size
    detail = (f"source MemAvailable {format_bytes(available)} - {format_bytes(size)} = "
              f"{format_bytes(max(after, 0))}, reserve {format_bytes(reserve)}")
    return after >= reserve, detail


# --- the move ------------------------------------------------------------------------------


@dataclass
class MoveResult:
    size: int
    ok: bool = False
    steps: list[dict[str, Any]] = field(default_factory=list)
    rolled_back: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"size": self.size, "ok": self.ok, "rolled_back": self.rolled_back,
                "steps": self.steps}


def move(qa: Any, qb: Any, size: int, removal: Removal, *, recorder: Any,
         timeout: float = 60.0) -> MoveResult:
    """Remove from A, add to B; on B's failure give A its memory back."""
    result = MoveResult(size)
    taken = _take(qa, removal, result, timeout)
    recorder.audit("partition.remove", {"steps": result.steps})
    if not taken:
        return result
    added = _give(qb, removal, result, timeout)
    recorder.audit("partition.add", {"steps": result.steps[-1:]})
    if added:
        result.ok = True
        return result
    _give(qa, removal, result, timeout, back=True)
    result.rolled_back = True
    recorder.audit("partition.rollback", {"steps": result.steps[-1:]})
    return result


def _step(result: MoveResult, where: str, r: vm.VmResult) -> bool:
    result.steps.append({"vm": where, **r.as_dict()})
    return r.ok


def _take(qa: Any, removal: Removal, result: MoveResult, timeout: float) -> bool:
    if removal.kind == "virtio-mem":
        dev = removal.devices[0]
        target = (dev.requested_size or 0) - removal.size
        return _step(result, "from", vm.resize_virtio_mem(qa, dev.id, target, timeout))
    done: list[vm.MemoryDevice] = []
    for dev in removal.devices:
        if not _step(result, "from", vm.remove_dimm(qa, dev.id, timeout)):
            for back in done:  # a partial take: put back what already left
                _step(result, "from", vm.add_dimm(qa, back.id, back.size, slot=back.slot))
            return False
        done.append(dev)
    return True


def _give(q: Any, removal: Removal, result: MoveResult, timeout: float,
          back: bool = False) -> bool:
    where = "from" if back else "to"
    if back and removal.kind == "virtio-mem":
        dev = removal.devices[0]
        return _step(result, where, vm.resize_virtio_mem(q, dev.id, dev.requested_size or 0,
                                                         timeout))
    if back:
        return all([_step(result, where, vm.add_dimm(q, d.id, d.size, slot=d.slot))
                    for d in removal.devices])
    devices = vm.list_devices(q)
    receiver = pick_receiver(devices, removal.size)
    if receiver is not None:
        target = (receiver.requested_size or 0) + removal.size
        return _step(result, where, vm.resize_virtio_mem(q, receiver.id, target, timeout))
    taken = {d.id for d in devices}
    ok = True
    for n, dev in enumerate(removal.devices):
        new_id = next(f"part{n}-{i}" for i in range(1000) if f"part{n}-{i}" not in taken)
        ok = _step(result, where, vm.add_dimm(q, new_id, dev.size)) and ok
    return ok
