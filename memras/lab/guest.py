"""One QEMU guest running the Debian kernel with this host's userland: :class:`Lab`.

Machine: ``-machine pc`` (TCG unless a short probe boot shows KVM works), ``-cpu
Nehalem`` (an Intel family-6 CPU, so Linux handles QEMU's injected MCEs as on real
Intel servers), ``-smp 2``, boot RAM plus cold-plugged ``pc-dimm`` devices in
fixed slots: the "failing DIMM since boot" case. ``memhp_default_state=
online_movable`` puts every DIMM block in ZONE_MOVABLE, as the replacement
procedure requires. The host root is shared read-only over 9p; the guest mounts
its own proc/sys/dev over it (see :mod:`memras.lab.initramfs`).

Wiring: ttyS0 is a unix socket driven by :class:`memras.lab.console.Console`,
ttyS1 (the kernel console) is ``kernel.log``, QMP is another unix socket. All of
it lives in one state directory, with ``state.json``, so a guest started by
``memras lab up`` can be attached to later by another process.

Network (QEMU user mode, ``restrict=on``: the guest reaches nothing but the
forwards below): virtio-net ``eth0`` is 10.0.2.15/24, default route 10.0.2.2.
``guestfwd`` rules at ``GUEST_FWD_ADDR`` (10.0.2.100) reach the host:

* ``10.0.2.100:4444`` (``GUEST_QMP_PORT``) is a SECOND QMP monitor of the same QEMU
  (``qmp-guest.sock``), so memras inside the guest can drive QEMU, e.g.
  ``memras replace --backend qemu --qmp 10.0.2.100:4444``. Independent of
  :attr:`Lab.qmp` (each monitor takes one client at a time).
* ``10.0.2.100:PORT`` for each ``LabConfig.forwards`` entry ``(PORT, host_port)``
  reaches ``127.0.0.1:host_port``; ``host_port`` 0 (the default for
  ``WEBHOOK_GUEST_PORT`` 8080) means "the port given to :meth:`Lab.forward` later",
  read per connection, so a test starts its receiver on a free port after boot::

      lab.forward(8080, receiver_port)   # guest: curl http://10.0.2.100:8080/

Each guest connection spawns :mod:`memras.lab.relay` on the host (libslirp's
``cmd:`` forward). None of this listens on a host port: the forwards live inside
each QEMU's own user-mode network and lead to files and sockets in its state
directory.

Several guests at once. Everything a guest owns (console, both QMP sockets, the
forward port files, the guest agent socket, logs, ``state.json``) lives in its
``state_dir``, so a second :class:`Lab` with another ``state_dir`` (and
``LabConfig.name`` for ``ps``) runs beside the first without clashing; each has
its own 10.0.2.0/24 and 10.0.2.100 forwards. The kernel and initramfs caches are
shared read-only.

QEMU guest agent (``LabConfig.guest_agent``): a ``virtio-serial`` port named
``org.qemu.guest_agent.0`` whose host end is ``qga.sock`` in the state directory;
:meth:`Lab.start_guest_agent` starts ``qemu-ga`` in the guest on it (the binary
from :func:`memras.lab.kernel.ensure_guest_agent`, ``virtio_console`` in the
initramfs).

Usage::

    with Lab(LabConfig()) as lab:        # boots; shuts down on exit or Ctrl-C
        print(lab.run("cat /proc/meminfo").output)
        lab.qmp.unplug("dimm0")
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from memras.errors import LabError, QemuError
from memras.lab.console import CommandResult, Console
from memras.lab.initramfs import AGENT_MODULES, READY_BANNER, SHELL_STARTING, ensure_initramfs
from memras.lab.initramfs import GUEST_IP as GUEST_IP  # the init script sets it
from memras.lab.kernel import Kernel, cache_dir, ensure_guest_agent, ensure_kernel
from memras.qemu.qmp import GuestQmp, qmp_library

QEMU = "qemu-system-x86_64"
QEMU_HINT = "run: apt-get install qemu-system-x86"
MIB = 1 << 20
KVM_PROBE_TIMEOUT_S = 20.0
VIRTIO_MEM_ID = "vmem0"
GUEST_FWD_ADDR = "10.0.2.100"
GUEST_QMP_PORT = 4444
WEBHOOK_GUEST_PORT = 8080
GUEST_AGENT_PORT = "org.qemu.guest_agent.0"

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    """The default progress sink: say nothing."""


@dataclass(frozen=True)
class DimmSpec:
    """A cold-plugged pc-dimm: QEMU id, size and slot (= ACPI PNP0C80 uid), and the guest
    NUMA node (``node=``; None: QEMU's default, node 0)."""

    id: str
    size_mib: int
    slot: int
    node: int | None = None

    @property
    def memdev(self) -> str:
        return f"mem-{self.id}"


DEFAULT_DIMMS = (DimmSpec("dimm0", 256, 0), DimmSpec("dimm1", 256, 1))


def checkout_root() -> Path:
    """The project checkout this memras runs from (it must be visible in the guest)."""
    return Path(__file__).resolve().parents[2]


def default_keep() -> tuple[Path, ...]:
    """Paths the guest must see at their host path: checkout, venv, Python."""
    paths = {checkout_root(), Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    return tuple(sorted(paths))


@dataclass(frozen=True)
class LabConfig:
    """What guest to boot. Guest RAM = boot memory + DIMMs (≤ 1.5 GiB by default)."""

    boot_mib: int = 1024
    slots: int = 4
    maxmem_mib: int = 4096
    cpus: int = 2
    dimms: tuple[DimmSpec, ...] = DEFAULT_DIMMS
    accel: str | None = None  # None: $MEMRAS_LAB_ACCEL, else probe KVM, else tcg
    keep: tuple[Path, ...] = field(default_factory=default_keep)
    virtio_mem_mib: int = 256  # a virtio-mem-pci "vmem0" of this maximum size, empty at boot
    boot_timeout_s: float = 300.0
    cmdline_extra: str = ""
    # (guest port at 10.0.2.100, host port on 127.0.0.1); host port 0: set by Lab.forward()
    forwards: tuple[tuple[int, int], ...] = ((WEBHOOK_GUEST_PORT, 0),)
    guest_qmp: bool = True  # 10.0.2.100:4444 -> a second QMP monitor
    guest_agent: bool = False  # a virtio-serial qemu-ga channel (qga.sock), see the docstring
    name: str = "memras-lab"  # QEMU -name (process title), to tell guests apart
    # more QEMU arguments (devices: e.g. an IPMI BMC, tests/lab/test_scenario_bmc.py) and
    # the guest modules they need (loaded at boot with their dependencies)
    qemu_extra: tuple[str, ...] = ()
    extra_modules: tuple[str, ...] = ()
    # NUMA nodes (>1: a NUMA guest, see numa_argv): node 0 holds the boot RAM, the others
    # start memory-less with CPU n on node n, and DIMMs join them with DimmSpec.node
    numa_nodes: int = 1


@dataclass
class LabState:
    """What ``state.json`` records about a running guest."""

    pid: int
    accel: str
    kernel: str
    boot_seconds: float
    started: float
    dimms: list[dict[str, object]]
    state_dir: str

    @classmethod
    def load(cls, path: Path) -> LabState:
        return cls(**json.loads(path.read_text()))


class Lab:
    """A booted guest: ``boot()``, ``run(cmd)``, ``qmp``, ``shutdown()``; a context manager."""

    def __init__(self, config: LabConfig | None = None, state_dir: Path | None = None,
                 progress: Progress = _quiet) -> None:
        self.config = config or LabConfig()
        self.state_dir = state_dir or cache_dir() / "run"
        self.progress = progress
        self.state: LabState | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._console: Console | None = None
        self._qmp: GuestQmp | None = None
        self.agent_binary: Path | None = None

    # --- paths ---------------------------------------------------------------------------

    @property
    def console_socket(self) -> Path:
        return self.state_dir / "console.sock"

    @property
    def qmp_socket(self) -> Path:
        return self.state_dir / "qmp.sock"

    @property
    def guest_qmp_socket(self) -> Path:
        """The second QMP monitor, reached from the guest at 10.0.2.100:4444."""
        return self.state_dir / "qmp-guest.sock"

    @property
    def guest_agent_socket(self) -> Path:
        """The host end of the guest agent channel (``LabConfig.guest_agent``)."""
        return self.state_dir / "qga.sock"

    def forward_file(self, guest_port: int) -> Path:
        return forward_file(self.state_dir, guest_port)

    def forward(self, guest_port: int, host_port: int) -> None:
        """Point the guest's ``10.0.2.100:guest_port`` at ``127.0.0.1:host_port`` from now on.

        Only for a forward booted with host port 0 (``LabConfig.forwards``).
        """
        path = self.forward_file(guest_port)
        partial = path.with_suffix(".partial")
        partial.write_text(f"{host_port}\n")
        os.replace(partial, path)

    @property
    def kernel_log(self) -> Path:
        return self.state_dir / "kernel.log"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Lab:
        if self.state is None:
            self.boot()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    @classmethod
    def attach(cls, state_dir: Path | None = None) -> Lab:
        """The guest that ``memras lab up`` left running."""
        lab = cls(state_dir=state_dir)
        if not lab.state_file.is_file():
            raise LabError("no lab guest is running", hint="run: memras lab up")
        lab.state = LabState.load(lab.state_file)
        if not lab.is_alive():
            lab._cleanup_files()
            raise LabError("the lab guest is no longer running", hint="run: memras lab up")
        return lab

    def boot(self) -> float:
        """Start QEMU and wait for the guest shell; the boot time in seconds."""
        qemu = shutil.which(QEMU)
        if qemu is None:
            raise LabError(f"{QEMU} not found", hint=QEMU_HINT)
        qmp_library()  # the [vm] extra: say it is missing before a boot, not after
        if self.state_file.is_file() and _pid_alive(LabState.load(self.state_file).pid):
            raise LabError(f"a lab guest already runs from {self.state_dir}",
                           hint="run: memras lab down")
        cache = cache_dir()
        kernel = ensure_kernel(cache, self.progress)
        keep = self.config.keep
        modules: tuple[str, ...] = ()
        if self.config.guest_agent:
            self.agent_binary = ensure_guest_agent(cache, self.progress)
            modules = AGENT_MODULES
            if not self.agent_binary.is_relative_to("/usr"):  # unpacked in the cache
                keep = (*keep, self.agent_binary.parent)  # visible even under a tmpfs path
        modules = (*modules, *self.config.extra_modules)
        self.progress("building the initramfs")
        initrd = ensure_initramfs(kernel, cache, keep, modules)
        accel = self.config.accel or choose_accel(qemu, kernel, cache, self.progress)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._cleanup_files()
        started = time.monotonic()
        self.progress(f"booting {kernel.version} under {accel}")
        try:
            self._start(qemu, kernel, initrd, accel)
            self._wait_shell()
        except BaseException:
            self.shutdown()
            raise
        seconds = time.monotonic() - started
        self.state = LabState(
            pid=self._proc.pid if self._proc else 0, accel=accel, kernel=kernel.version,
            boot_seconds=round(seconds, 2), started=time.time(),
            dimms=[asdict(d) for d in self.config.dimms], state_dir=str(self.state_dir))
        self.state_file.write_text(json.dumps(asdict(self.state), indent=2))
        return seconds

    def _start(self, qemu: str, kernel: Kernel, initrd: Path, accel: str) -> None:
        argv = qemu_argv(qemu, self.config, kernel, initrd, accel, self.state_dir)
        log = (self.state_dir / "qemu.log").open("wb")
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def _wait_shell(self) -> None:
        """Wait for the shell's ready banner; if it was missed, for the shell to answer."""
        console = self._console = self._connect_console(deadline=time.monotonic() + 30)
        deadline = time.monotonic() + self.config.boot_timeout_s
        while True:
            try:
                console.expect(re.escape(READY_BANNER), 5, self.is_alive)
                break
            except TimeoutError:
                if SHELL_STARTING in self._kernel_log_tail(50):
                    console.sync(timeout=30)
                    return
            if time.monotonic() > deadline:
                raise LabError(f"the guest did not reach its shell within "
                               f"{self.config.boot_timeout_s:.0f} s; kernel log ends: "
                               f"{self._kernel_log_tail()}", hint=f"see {self.kernel_log}")
        console.sync()

    def _connect_console(self, deadline: float) -> Console:
        """Connect as soon as QEMU listens on the console socket (bind comes before listen)."""
        while True:
            if not self.is_alive():
                raise LabError(f"QEMU exited: {self._qemu_log_tail()}",
                               hint=f"see {self.state_dir / 'qemu.log'}")
            if self.console_socket.exists():
                try:
                    return Console(self.console_socket, self.state_dir / "console.log")
                except LabError:
                    pass
            if time.monotonic() > deadline:
                raise LabError("QEMU did not open its console socket",
                               hint=f"see {self.state_dir / 'qemu.log'}")
            time.sleep(0.05)

    def is_alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self.state is not None and _pid_alive(self.state.pid)

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stop QEMU and remove the state: QMP ``quit`` when connected, else SIGTERM.

        QEMU exits cleanly on SIGTERM too; it is used instead of opening a new QMP
        connection, which would wait behind any other client still connected.
        """
        pid = self._proc.pid if self._proc else (self.state.pid if self.state else 0)
        quit_sent = False
        if self._qmp is not None and pid and self.is_alive():
            with contextlib.suppress(QemuError):
                self._qmp.cmd("quit")
                quit_sent = True
        self.shutdown_connections()
        if pid:
            _stop_pid(pid, self._proc, timeout if quit_sent else 0)
        self._proc = None
        self.state = None
        self._cleanup_files()

    def release_qmp(self) -> None:
        """Close this object's QMP client so another one (e.g. ``memras partition``) can
        connect: a QMP monitor serves one client at a time. :attr:`qmp` reconnects."""
        if self._qmp:
            self._qmp.close()
            self._qmp = None

    def start_guest_agent(self, timeout: float = 60.0) -> str:
        """Start ``qemu-ga`` in the guest on its virtio-serial port; the port's device.

        Needs ``LabConfig.guest_agent``. The guest has no udev, so the port is found
        by name under /sys/class/virtio-ports (``/dev/vportNpM``), not through
        /dev/virtio-ports. Ready once ``guest-ping`` answers on :attr:`guest_agent_socket`.
        """
        if not self.config.guest_agent:
            raise LabError("this guest was booted without a guest agent channel",
                           hint="LabConfig(guest_agent=True)")
        binary = self.agent_binary or ensure_guest_agent(cache_dir(), self.progress)
        port = self.check(
            "for p in /sys/class/virtio-ports/*; do "
            f'[ "$(cat $p/name 2>/dev/null)" = {GUEST_AGENT_PORT} ] && echo ${{p##*/}}; '
            "done; true").strip()
        if not port:
            raise LabError(f"the guest has no virtio-serial port {GUEST_AGENT_PORT}",
                           hint="is virtio_console loaded? see kernel.log")
        self.check(f"mkdir -p /run/qga && {shlex.quote(str(binary))} -m virtio-serial "
                   f"-p /dev/{port} -t /run/qga -f /run/qga/qemu-ga.pid "
                   "-l /run/qga/qemu-ga.log -d")
        deadline = time.monotonic() + timeout
        while True:
            try:
                guest_agent_call(self.guest_agent_socket, "guest-ping", timeout=5)
                return f"/dev/{port}"
            except (OSError, ValueError, LabError) as exc:
                if time.monotonic() > deadline:
                    log = self.run("cat /run/qga/qemu-ga.log").output.strip()[-300:]
                    raise LabError(f"qemu-ga does not answer on {self.guest_agent_socket}: "
                                   f"{exc}; its log: {log}") from None
            time.sleep(1)

    def shutdown_connections(self) -> None:
        """Let go of the console and QMP sockets (each takes one client) and leave QEMU running."""
        if self._console:
            self._console.close()
            self._console = None
        if self._qmp:
            self._qmp.close()
            self._qmp = None

    def _cleanup_files(self) -> None:
        for path in (self.console_socket, self.qmp_socket, self.guest_qmp_socket,
                     self.guest_agent_socket, self.state_file,
                     *self.state_dir.glob("forward-*.port")):
            path.unlink(missing_ok=True)

    # --- driving -------------------------------------------------------------------------

    @property
    def console(self) -> Console:
        if self._console is None:
            self._console = Console(self.console_socket, self.state_dir / "console.log")
            self._console.sync()
        return self._console

    @property
    def qmp(self) -> GuestQmp:
        if self._qmp is None:
            try:
                self._qmp = GuestQmp(self.qmp_socket)
            except QemuError as exc:  # say what to do in lab terms
                raise LabError(exc.msg, hint="is the lab up? run: memras lab status") from None
        return self._qmp

    def run(self, command: str, timeout: float = 60.0) -> CommandResult:
        """Run a shell command in the guest (as root, in the chroot of the host's root)."""
        return self.console.run(command, timeout)

    def check(self, command: str, timeout: float = 60.0) -> str:
        """Run a command that must succeed; its output."""
        result = self.run(command, timeout)
        if not result.ok:
            raise LabError(f"guest command failed ({result.status}): {command}: "
                           f"{result.output.strip()[-300:]}")
        return result.output

    def _kernel_log_tail(self, lines: int = 5) -> str:
        try:
            text = self.kernel_log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no kernel log)"
        return " | ".join(text[-lines:]) or "(empty)"

    def _qemu_log_tail(self) -> str:
        try:
            return (self.state_dir / "qemu.log").read_text(errors="replace").strip()[-400:]
        except OSError:
            return "(no QEMU log)"


def numa_argv(config: LabConfig) -> list[str]:
    """``-numa`` for a NUMA guest: the boot RAM as node 0's memdev (QEMU refuses ``mem=``
    on current machine types, and mixing ``mem=`` with ``memdev=``), the other nodes
    memory-less with one CPU each, so their memory is only what DIMMs bring (QEMU's SRAT
    gives the hotplug range to the last node; a pc-dimm's ``node=`` picks the node)."""
    if config.numa_nodes <= 1:
        return []
    if config.cpus < config.numa_nodes:
        raise LabError(f"a {config.numa_nodes}-node guest needs at least as many CPUs "
                       f"(cpus = {config.cpus})")
    argv = ["-object", f"memory-backend-ram,id=ram-node0,size={config.boot_mib}M",
            "-numa", "node,nodeid=0,cpus=0,memdev=ram-node0"]
    for node in range(1, config.numa_nodes):
        last = config.cpus - 1 if node == config.numa_nodes - 1 else node
        cpus = str(node) if last == node else f"{node}-{last}"
        argv += ["-numa", f"node,nodeid={node},cpus={cpus}"]
    return argv


def qemu_argv(qemu: str, config: LabConfig, kernel: Kernel, initrd: Path, accel: str,
              state_dir: Path) -> list[str]:
    """The full QEMU command line for a guest."""
    append = ("console=ttyS1 panic=-1 quiet memhp_default_state=online_movable "
              f"{config.cmdline_extra}").strip()
    argv = [
        qemu, "-name", config.name, "-machine", f"pc,accel={accel}", "-cpu", "Nehalem",
        "-smp", str(config.cpus),
        "-m", f"{config.boot_mib}M,slots={config.slots},maxmem={config.maxmem_mib}M",
        "-nodefaults", "-display", "none", "-no-reboot", "-monitor", "none",
        "-chardev", f"socket,id=con0,path={state_dir / 'console.sock'},server=on,wait=off",
        "-serial", "chardev:con0", "-serial", f"file:{state_dir / 'kernel.log'}",
        "-qmp", f"unix:{state_dir / 'qmp.sock'},server=on,wait=off",
        "-kernel", str(kernel.vmlinuz), "-initrd", str(initrd), "-append", append,
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,"
                   "multidevs=remap",
    ]
    argv += numa_argv(config)
    for dimm in config.dimms:
        node = "" if dimm.node is None else f",node={dimm.node}"
        argv += ["-object", f"memory-backend-ram,id={dimm.memdev},size={dimm.size_mib}M",
                 "-device", f"pc-dimm,id={dimm.id},memdev={dimm.memdev},slot={dimm.slot}"
                            f"{node}"]
    argv += network_argv(config, state_dir)
    if config.guest_agent:
        argv += ["-device", "virtio-serial-pci,id=vser0",
                 "-chardev", f"socket,id=qga0,path={state_dir / 'qga.sock'},server=on,wait=off",
                 "-device", f"virtserialport,bus=vser0.0,chardev=qga0,name={GUEST_AGENT_PORT}"]
    if config.virtio_mem_mib:
        argv += ["-object", f"memory-backend-ram,id=mem-{VIRTIO_MEM_ID},"
                            f"size={config.virtio_mem_mib}M",
                 "-device", f"virtio-mem-pci,id={VIRTIO_MEM_ID},memdev=mem-{VIRTIO_MEM_ID},"
                            "node=0,requested-size=0"]
    return argv + list(config.qemu_extra)


def guest_agent_call(socket_path: Path, command: str, arguments: dict[str, object] | None = None,
                     timeout: float = 10.0) -> object:
    """One qemu-ga command over its host socket, after a ``guest-sync`` (which drops
    anything a previous client left in the channel); its ``return`` value."""
    token = random.randrange(1 << 30)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(socket_path))
        reader = sock.makefile("rb")
        sock.sendall(json.dumps({"execute": "guest-sync", "arguments": {"id": token}}).encode()
                     + b"\n")
        while json.loads(reader.readline() or b"{}").get("return") != token:
            pass
        request = {"execute": command, **({"arguments": arguments} if arguments else {})}
        sock.sendall(json.dumps(request).encode() + b"\n")
        reply = json.loads(reader.readline() or b"{}")
    if "return" not in reply:
        raise LabError(f"qemu-ga {command}: {reply.get('error', reply)}")
    return reply["return"]


def forward_file(state_dir: Path, guest_port: int) -> Path:
    return state_dir / f"forward-{guest_port}.port"


def network_argv(config: LabConfig, state_dir: Path) -> list[str]:
    """User-mode networking with the ``guestfwd`` rules described in the module docstring."""
    relay = f"cmd:{sys.executable} -m memras.lab.relay"
    rules = []
    for guest_port, host_port in config.forwards:
        port_file = forward_file(state_dir, guest_port)
        if host_port:
            port_file.write_text(f"{host_port}\n")
        rules.append(f"guestfwd=tcp:{GUEST_FWD_ADDR}:{guest_port}-{relay} tcp-file {port_file}")
    argv = []
    if config.guest_qmp:
        socket_path = state_dir / "qmp-guest.sock"
        rules.append(f"guestfwd=tcp:{GUEST_FWD_ADDR}:{GUEST_QMP_PORT}-{relay} unix {socket_path}")
        argv += ["-qmp", f"unix:{socket_path},server=on,wait=off"]
    # romfile= : Debian's QEMU ships no efi-virtio.rom, and -kernel boot needs no PXE ROM.
    return argv + ["-netdev", ",".join(["user,id=net0,restrict=on", *rules]),
                   "-device", "virtio-net-pci,netdev=net0,romfile="]


# --- accelerator --------------------------------------------------------------------------


def choose_accel(qemu: str, kernel: Kernel, cache: Path, progress: Progress = _quiet) -> str:
    """``kvm`` only when a short probe boot under KVM reached the kernel's panic; else ``tcg``.

    /dev/kvm can exist and still hang or fail on these machines, so its presence
    proves nothing. The answer is cached per QEMU binary and kernel.
    """
    forced = os.environ.get("MEMRAS_LAB_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    record = cache / "kvm-probe.json"
    key = f"{qemu}:{kernel.version}"
    try:
        known = json.loads(record.read_text())
        if known.get("key") == key:
            return str(known["accel"])
    except (OSError, ValueError, KeyError):
        pass
    progress("probing KVM with a short boot")
    accel = "kvm" if _kvm_boots(qemu, kernel) else "tcg"
    record.write_text(json.dumps({"key": key, "accel": accel}))
    return accel


def _kvm_boots(qemu: str, kernel: Kernel) -> bool:
    """Boot the kernel with no root under KVM: a working KVM reaches 'Kernel panic' fast."""
    argv = [qemu, "-machine", "pc,accel=kvm", "-cpu", "Nehalem", "-m", "256M", "-nodefaults",
            "-display", "none", "-no-reboot", "-serial", "stdio", "-kernel", str(kernel.vmlinuz),
            "-append", "console=ttyS0 panic=-1"]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=KVM_PROBE_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False
    return b"Kernel panic" in proc.stdout


# --- processes ----------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _stop_pid(pid: int, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Wait for ``pid`` to exit, escalating to SIGTERM and SIGKILL."""
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
        deadline = time.monotonic() + (timeout if sig is None else 5)
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    return
            elif not _pid_alive(pid):
                return
            time.sleep(0.1)
