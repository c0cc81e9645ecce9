"""The lab's kernel: Debian's generic amd64 kernel, downloaded and unpacked, never installed.

Why the generic flavour: the ``cloud`` kernel lacks X86_MCE, MEMORY_FAILURE and 9p
(see docs/hotplug-internals.md, section lab). We ask apt which package
``linux-image-amd64`` currently depends on (``linux-image-6.1.0-NN-amd64``),
``apt-get download`` it into the cache and ``dpkg -x`` it next to the .deb. Both
steps go through a temporary name and a rename, so an interrupted download
never leaves a half-written kernel that a later run would trust.

The package has no ``modules.dep`` (depmod runs in its postinst), so the load
order of the modules the guest needs is resolved here from each ``.ko``'s own
``.modinfo`` ELF section (``depends=a,b``), read directly from the file.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from memras.errors import LabError

META_PACKAGE = "linux-image-amd64"

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    """The default progress sink: say nothing."""


def cache_dir() -> Path:
    """Where kernels, initramfs images and a running lab's state live."""
    env = os.environ.get("MEMRAS_LAB_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "memras" / "lab"


@dataclass(frozen=True)
class Kernel:
    """An unpacked kernel package: ``root`` is what ``dpkg -x`` produced."""

    version: str  # e.g. 6.1.0-57-amd64
    root: Path

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.version}"

    @property
    def config(self) -> Path:
        return self.root / "boot" / f"config-{self.version}"

    @property
    def modules_dir(self) -> Path:
        return self.root / "lib" / "modules" / self.version / "kernel"


def kernel_package() -> str:
    """``linux-image-6.1.0-NN-amd64``: what the meta package depends on today."""
    _require_tool("apt-cache", "apt-get install apt")
    out = _run(["apt-cache", "depends", META_PACKAGE], "apt-cache depends")
    match = re.search(r"Depends:\s*(linux-image-\S+-amd64)", out)
    if not match:
        raise LabError(
            f"apt-cache does not know {META_PACKAGE}",
            hint="run: apt-get update (Debian main must be in the sources)",
        )
    return match.group(1)


def ensure_kernel(cache: Path | None = None, progress: Progress = _quiet) -> Kernel:
    """The unpacked kernel, downloading and unpacking it only when not cached.

    With no network the newest kernel already in the cache is used, so a lab
    that worked once keeps working offline.
    """
    cache = cache or cache_dir()
    try:
        package = kernel_package()
    except LabError:
        cached = _newest_cached(cache)
        if cached is None:
            raise
        return cached
    version = package.removeprefix("linux-image-")
    root = cache / "kernels" / version
    kernel = Kernel(version, root)
    if kernel.vmlinuz.is_file() and kernel.modules_dir.is_dir():
        return kernel
    deb = _download(package, cache / "debs", progress)
    _unpack(deb, root, progress)
    if not kernel.vmlinuz.is_file():
        raise LabError(f"{deb.name} holds no boot/vmlinuz-{version}",
                       hint=f"delete {deb} and rerun")
    return kernel


GUEST_AGENT_PACKAGE = "qemu-guest-agent"
GUEST_AGENT = "usr/sbin/qemu-ga"


def ensure_guest_agent(cache: Path | None = None, progress: Progress = _quiet) -> Path:
    """A ``qemu-ga`` binary the guest can run: the host's own, else Debian's, unpacked.

    The guest runs this host's userland (9p), so the host's ``/usr/sbin/qemu-ga`` is
    used when installed. Otherwise ``qemu-guest-agent`` is fetched as the kernel is
    (``apt-get download`` + ``dpkg -x`` into the cache, never installed); its
    libraries (glib, libnuma, liburing, libudev) are the ones qemu-system-x86 already
    needs on the host, so the unpacked binary runs in the guest's chroot as is.
    """
    installed = Path("/") / GUEST_AGENT
    if installed.is_file():
        return installed
    cache = cache or cache_dir()
    for root in sorted((cache / "guest-agent").glob("*"), reverse=True):
        if (root / GUEST_AGENT).is_file():
            return root / GUEST_AGENT
    deb = _download(GUEST_AGENT_PACKAGE, cache / "debs", progress, "about 1 MB")
    root = cache / "guest-agent" / re.sub(r"[^\w.+-]", "_", deb.stem)  # no ':' or '%'
    _unpack(deb, root, progress)
    if not (root / GUEST_AGENT).is_file():
        raise LabError(f"{deb.name} holds no {GUEST_AGENT}", hint=f"delete {deb} and rerun")
    return root / GUEST_AGENT


def _newest_cached(cache: Path) -> Kernel | None:
    kernels = sorted((cache / "kernels").glob("*-amd64"))
    for root in reversed(kernels):
        kernel = Kernel(root.name, root)
        if kernel.vmlinuz.is_file():
            return kernel
    return None


def _download(package: str, debs: Path, progress: Progress, size: str = "about 70 MB"
              ) -> Path:
    existing = sorted(debs.glob(f"{package}_*.deb"))
    if existing:
        return existing[-1]
    _require_tool("apt-get", "apt-get install apt")
    debs.mkdir(parents=True, exist_ok=True)
    progress(f"downloading {package} ({size})")
    with tempfile.TemporaryDirectory(dir=debs, prefix=".download-") as tmp:
        _run(["apt-get", "download", "-q", package], "apt-get download", cwd=tmp)
        got = sorted(Path(tmp).glob(f"{package}_*.deb"))
        if not got:
            raise LabError(f"apt-get download {package} produced no .deb",
                           hint="run: apt-get update")
        target = debs / got[-1].name
        os.replace(got[-1], target)
    return target


def _unpack(deb: Path, root: Path, progress: Progress) -> None:
    _require_tool("dpkg", "apt-get install dpkg")
    progress(f"unpacking {deb.name}")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=".unpack-"))
    try:
        _run(["dpkg", "-x", str(deb), str(tmp)], "dpkg -x")
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _require_tool(name: str, install: str) -> None:
    if shutil.which(name) is None:
        raise LabError(f"{name} not found", hint=f"run: {install}")


def _run(argv: list[str], what: str, cwd: str | None = None) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        raise LabError(f"{what} took more than 15 minutes", hint="check the network") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise LabError(f"{what} failed: {last}", hint="run: apt-get update") from None
    return proc.stdout


# --- module dependencies ------------------------------------------------------------------


def module_name(path: Path) -> str:
    """The kernel's name for a module file: ``mce-inject.ko`` -> ``mce_inject``."""
    return path.name.removesuffix(".ko").replace("-", "_")


def module_index(kernel: Kernel) -> dict[str, Path]:
    """Every module of the package by kernel name."""
    return {module_name(p): p for p in kernel.modules_dir.rglob("*.ko")}


def modinfo(ko: Path) -> dict[str, str]:
    """The ``key=value`` pairs of a module's ``.modinfo`` ELF section (first of each key)."""
    data = ko.read_bytes()
    section = _elf_section(data, b".modinfo")
    info: dict[str, str] = {}
    for entry in section.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep and key.decode(errors="replace") not in info:
            info[key.decode(errors="replace")] = value.decode(errors="replace")
    return info


def _elf_section(data: bytes, wanted: bytes) -> bytes:
    """The bytes of one section of a little-endian ELF64 file (a .ko)."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise LabError("not an ELF64 kernel module", hint="delete the lab cache and rerun")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from(
            "<IIQQQQ", data, shoff + i * shentsize)
        return name, offset, size

    _, str_off, str_size = header(shstrndx)
    names = data[str_off:str_off + str_size]
    for i in range(shnum):
        name_off, offset, size = header(i)
        name = names[name_off:names.index(b"\0", name_off)]
        if name == wanted:
            return data[offset:offset + size]
    return b""


def load_order(wanted: Iterable[str], index: dict[str, Path]) -> list[Path]:
    """The ``.ko`` files to insmod, dependencies first (depth-first on ``depends=``)."""
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        name = name.replace("-", "_")
        if name in seen:
            return
        if name in chain:
            raise LabError(f"module dependency cycle: {' -> '.join((*chain, name))}")
        path = index.get(name)
        if path is None:
            raise LabError(f"module {name} is not in the kernel package",
                           hint="delete the lab cache and rerun to fetch the kernel again")
        for dep in filter(None, modinfo(path).get("depends", "").split(",")):
            visit(dep, (*chain, name))
        seen.add(name)
        order.append(path)

    for name in wanted:
        visit(name, ())
    return order
