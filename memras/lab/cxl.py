"""A second lab guest with a CXL Type-3 memory device: QEMU 10 and Linux 6.12 from
Debian bookworm-backports, unpacked into the lab cache and never installed.

The 6.1 lab keeps running on the system's QEMU 7.2 and Debian's 6.1 kernel: nothing
here touches the system's packages or apt sources. bookworm-backports is read
through a private apt configuration (its own sources list, lists and cache under
``<lab cache>/backports``: ``apt-get update``/``download`` with ``-o Dir::…``), the
``.deb``s are unpacked with ``dpkg -x`` (as :mod:`memras.lab.kernel` does for the 6.1
kernel), and the 6.12 kernel lives in ``backports/kernels`` so that the 6.1 lab's
offline fallback (the newest kernel in ``kernels/``) never picks it.

Two things differ from the 6.1 lab's parts: QEMU 10 must not load the system QEMU
7.2's modules (``QEMU_MODULE_DIR`` points at the unpacked, module-less tree; the CXL
devices are built in), and the 6.12 package ships its modules xz-compressed, which
busybox's insmod cannot load: the ones the guest needs (and their dependencies) are
decompressed next to the ``.ko.xz`` once, so :func:`memras.lab.kernel.module_index`
finds them.

The guest: ``-machine q35,cxl=on``, one CXL host bridge (``pxb-cxl``), one root port
and a volatile ``cxl-type3`` device of :data:`CXL_MIB` MiB, a 4 GiB fixed memory
window (QEMU docs/system/devices/cxl.rst). The root port (``cxl-rp``, slot 2) is
hot-plug capable as QEMU makes it by default: the 6.12 guest's pciehp takes a QMP
``device_del`` of the cxl-type3 as an attention-button press, powers the slot off 5 s
later and QEMU sends ``DEVICE_DELETED``; a ``device_add`` of a new cxl-type3 there
(with its own memory backend and ``sn``) is enumerated as a new memdev (measured in
this guest: no ``hotplug=on`` or other slot was needed, and no guest-side PCI
remove/rescan). :func:`inject_general_media`,
:func:`inject_dram`, :func:`inject_memory_module` and :func:`inject_poison` drive QMP's
``cxl-inject-*`` commands (their arguments: QEMU 10's qapi/cxl.json).
"""

from __future__ import annotations

import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from memras.errors import LabError
from memras.lab.guest import Lab, LabConfig, LabState, qemu_argv
from memras.lab.initramfs import (
    BOOT_MODULES,
    BUSYBOX,
    BUSYBOX_HINT,
    NET_MODULES,
    TEST_MODULES,
    _digest,
    _pack,
    _populate,
    init_script,
)
from memras.lab.kernel import (
    Kernel,
    _run,
    _unpack,
    cache_dir,
    load_order,
    modinfo,
    module_index,
    module_name,
)

BACKPORTS = "deb http://deb.debian.org/debian bookworm-backports main"
QEMU_PACKAGES = ("qemu-system-x86", "qemu-system-data")
KERNEL_PATTERN = "linux-image-6.12."  # + version + "-amd64-unsigned"
CXL_MODULES = ("cxl_acpi", "cxl_pci", "cxl_mem", "dax_cxl", "device_dax", "kmem")
CXL_MIB = 256
CXL_DEVICE = "cxl-mem0"  # the cxl-type3 device's QEMU id (QOM /machine/peripheral/<id>)


def backports_dir(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "backports"


def _apt_options(base: Path) -> list[str]:
    return ["-o", f"Dir::Etc::SourceList={base / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={base / 'lists'}",
            "-o", f"Dir::Cache={base / 'apt-cache'}"]


def _private_apt(base: Path) -> list[str]:
    """apt options for bookworm-backports alone, updated once per cache."""
    (base / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (base / "apt-cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    sources = base / "sources.list"
    if not sources.is_file():
        sources.write_text(BACKPORTS + "\n")
    options = _apt_options(base)
    if not any((base / "lists").glob("*Packages*")):
        _run(["apt-get", "-q", *options, "update"], "apt-get update (bookworm-backports)")
    return options


def _download(base: Path, package: str) -> Path:
    debs = base / "debs"
    have = sorted(debs.glob(f"{package}_*.deb"))
    if have:
        return have[-1]
    debs.mkdir(parents=True, exist_ok=True)
    _run(["apt-get", "-q", *_private_apt(base), "download", package],
         f"apt-get download {package}", cwd=str(debs))
    got = sorted(debs.glob(f"{package}_*.deb"))
    if not got:
        raise LabError(f"apt-get download {package} produced no .deb")
    return got[-1]


def ensure_qemu10(cache: Path | None = None) -> tuple[Path, Path]:
    """(the QEMU 10 binary, its data directory), unpacked from bookworm-backports."""
    base = backports_dir(cache)
    roots = {package: base / "qemu-10" / package for package in QEMU_PACKAGES}
    binary = roots["qemu-system-x86"] / "usr" / "bin" / "qemu-system-x86_64"
    data = roots["qemu-system-data"] / "usr" / "share" / "qemu"
    for package, root in roots.items():
        if not (root / "usr").is_dir():
            _unpack(_download(base, package), root, lambda _m: None)
    (base / "qemu-10" / "modules").mkdir(exist_ok=True)
    return binary, data


def qemu_module_dir(binary: Path) -> Path:
    """An empty module directory: QEMU 10 must not load the system QEMU's modules."""
    return binary.parents[3] / "modules"


# The generic flavour only: "6.12.95+deb12-amd64", not "-rt-amd64" or "-cloud-amd64"
# (a version has no dash; a flavour adds one). A fresh machine's listing once sorted the
# PREEMPT_RT build last, and the lab booted it: its CXL regions never got a DAX device.
GENERIC_612 = re.compile(r"6\.12\.\d[^-]*-amd64")


def _newest(names: Iterable[str]) -> str | None:
    """The highest version of ``names`` (numbers compared as numbers: 6.12.95 > 6.12.9)."""
    return max(names, key=lambda n: [int(x) for x in re.findall(r"\d+", n)], default=None)


def kernel_package(cache: Path | None = None) -> str:
    """The newest generic 6.12 ``linux-image-…-amd64-unsigned`` bookworm-backports has."""
    base = backports_dir(cache)
    out = _run(["apt-cache", *_private_apt(base), "pkgnames", KERNEL_PATTERN],
               "apt-cache pkgnames")
    newest = _newest(n for n in out.split() if n.endswith("-unsigned") and
                     GENERIC_612.fullmatch(n.removeprefix("linux-image-")
                                           .removesuffix("-unsigned")))
    if newest is None:
        raise LabError("bookworm-backports lists no generic 6.12 amd64 kernel",
                       hint=f"check {base / 'sources.list'}")
    return newest


def ensure_kernel612(cache: Path | None = None) -> Kernel:
    base = backports_dir(cache)
    have = _newest(d.name for d in (base / "kernels").glob("6.12.*-amd64")
                   if GENERIC_612.fullmatch(d.name) and (d / "boot").is_dir())
    if have is not None:
        version = have
    else:
        package = kernel_package(cache)
        version = package.removeprefix("linux-image-").removesuffix("-unsigned")
        _unpack(_download(base, package), base / "kernels" / version, lambda _m: None)
    kernel = Kernel(version, base / "kernels" / version)
    decompress_modules(kernel, CXL_MODULES + ("virtio_pci", "9pnet_virtio", "9p",
                                              "virtio_net", "mce_inject", "hwpoison_inject",
                                              "notifier_error_inject",
                                              "memory_notifier_error_inject", "virtio_mem"))
    return kernel


# ndctl's `cxl` and `daxctl` for the guest (Debian bookworm's ndctl 76.1), with the
# libraries the host may lack; the rest (libc, libkmod2, libudev1, libuuid1, libjson-c5,
# libkeyutils1, libndctl6, libdaxctl1) the guest takes from the host root it runs on.
NDCTL_PACKAGES = ("ndctl", "daxctl", "libcxl1", "libdaxctl1", "libndctl6", "libiniparser1",
                  "libtraceevent1", "libtracefs1", "libjson-c5")


@dataclass(frozen=True)
class Ndctl:
    """The unpacked ndctl tree, as the guest shell runs its tools."""

    root: Path

    def argv(self, tool: str) -> str:
        lib = self.root / "usr" / "lib" / "x86_64-linux-gnu"
        return f"LD_LIBRARY_PATH={lib} {self.root / 'usr' / 'bin' / tool}"


def ensure_ndctl(cache: Path | None = None) -> Ndctl:
    """ndctl's tools unpacked (``dpkg -x``) into ``<lab cache>/backports/ndctl``.

    The guest runs this host's userland over 9p (memras.lab.initramfs), so a tree in the
    lab cache is visible there as it is here: nothing goes into the initramfs and nothing
    is installed. The ``.deb``s come from the system's apt lists (bookworm main)."""
    base = backports_dir(cache)
    root = base / "ndctl"
    if (root / "usr" / "bin" / "cxl").is_file():
        return Ndctl(root)
    debs = base / "ndctl-debs"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in NDCTL_PACKAGES if not any(debs.glob(f"{p}_*.deb"))]
    if missing:
        _run(["apt-get", "-q", "download", *missing], f"apt-get download {' '.join(missing)}",
             cwd=str(debs))
    tmp = Path(tempfile.mkdtemp(dir=base, prefix=".ndctl-"))
    try:
        for deb in sorted(debs.glob("*.deb")):
            _run(["dpkg", "-x", str(deb), str(tmp)], f"dpkg -x {deb.name}")
        if root.exists():  # a tree an interrupted unpack left without its cxl
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Ndctl(root)


def decompress_modules(kernel: Kernel, names: tuple[str, ...]) -> None:
    """``x.ko.xz`` → ``x.ko`` for ``names`` and what they depend on (those present)."""
    index = {module_name(p.with_suffix("")): p for p in kernel.modules_dir.rglob("*.ko.xz")}
    seen: set[str] = set()

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in seen or name not in index:
            return  # built in, or already plain
        seen.add(name)
        packed = index[name]
        plain = packed.with_suffix("")
        if not plain.is_file():
            plain.write_bytes(lzma.decompress(packed.read_bytes()))
        for dep in filter(None, modinfo(plain).get("depends", "").split(",")):
            visit(dep)

    for name in names:
        visit(name)


def ensure_cxl_initramfs(kernel: Kernel, cache: Path, keep: tuple[Path, ...]) -> Path:
    """The 6.1 lab's initramfs (memras.lab.initramfs) for the 6.12 kernel: the same init,
    the modules it asks for that 6.12 builds as modules (virtio_pci is built in there),
    and the CXL ones."""
    if not BUSYBOX.is_file():
        raise LabError(f"{BUSYBOX} not found", hint=BUSYBOX_HINT)
    index = module_index(kernel)
    wanted = [n for n in (*BOOT_MODULES, *NET_MODULES, *TEST_MODULES, *CXL_MODULES)
              if n in index]
    modules = load_order(wanted, index)
    script = init_script(keep)
    target = cache / "initramfs" / f"initrd-{kernel.version}-{_digest(kernel, modules, script)}.gz"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="memras-initramfs-") as tmp:
        _populate(Path(tmp), modules, script)
        _pack(Path(tmp), target)
    return target


def cxl_argv(argv: list[str]) -> list[str]:
    """The 6.1 lab's command line made a CXL guest: q35 with CXL, one Type-3 device."""
    out = list(argv)
    i = out.index("-machine")
    out[i + 1] = out[i + 1].replace("pc,", "q35,cxl=on,", 1)
    # Without the CPUID hypervisor bit: committing a region makes 6.12 invalidate CPU
    # caches (cxl_region_invalidate_memregion), which it refuses under a hypervisor
    # ("Failed to synchronize CPU cache state", commit fails with ENXIO) unless built
    # with CONFIG_CXL_REGION_INVALIDATION_TEST, which Debian's kernel is not.
    i = out.index("-cpu")
    out[i + 1] += ",hypervisor=off"
    out += ["-object", f"memory-backend-ram,id=cxl-vmem0,share=on,size={CXL_MIB}M",
            "-device", "pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1",
            "-device", "cxl-rp,port=0,bus=cxl.1,id=cxl_rp0,chassis=0,slot=2",
            "-device", f"cxl-type3,bus=cxl_rp0,volatile-memdev=cxl-vmem0,id={CXL_DEVICE}",
            "-M", "cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G"]
    return out


class CxlLab(Lab):
    """The lab guest on QEMU 10 and Linux 6.12 with a CXL Type-3 device."""

    def __init__(self, config: LabConfig | None = None, state_dir: Path | None = None,
                 progress: Any = None) -> None:
        config = config or LabConfig()
        # no pc-dimm or virtio-mem: this guest is about its CXL device; its second QMP
        # monitor (10.0.2.100:4444) lets memras in the guest device_del/device_add the
        # cxl-type3 (scenario cxl-replace)
        config = replace(config, dimms=(), virtio_mem_mib=0, name="memras-lab-cxl",
                         guest_qmp=True, forwards=())
        super().__init__(config, state_dir or cache_dir() / "run-cxl",
                         progress or (lambda _m: None))

    def machine_argv(self, argv: list[str]) -> list[str]:
        """The 6.1 lab's QEMU command line made this guest's (a variant overrides it)."""
        return cxl_argv(argv)

    def boot(self) -> float:
        cache = cache_dir()
        qemu, data = ensure_qemu10(cache)
        kernel = ensure_kernel612(cache)
        self.progress("building the initramfs (6.12, CXL modules)")
        initrd = ensure_cxl_initramfs(kernel, cache, tuple(self.config.keep))
        accel = self.config.accel or "tcg"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._cleanup_files()
        started = time.monotonic()
        argv = self.machine_argv(qemu_argv(str(qemu), self.config, kernel, initrd, accel,
                                           self.state_dir)) + ["-L", str(data)]
        env = {**os.environ, "QEMU_MODULE_DIR": str(qemu_module_dir(qemu))}
        log = (self.state_dir / "qemu.log").open("wb")
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True,
                                          env=env)
            self._wait_shell()
        except BaseException:
            self.shutdown()
            raise
        finally:
            log.close()
        seconds = time.monotonic() - started
        self.state = LabState(pid=self._proc.pid, accel=accel, kernel=kernel.version,
                              boot_seconds=round(seconds, 2), started=time.time(), dimms=[],
                              state_dir=str(self.state_dir))
        self.state_file.write_text(json.dumps(asdict(self.state), indent=2))
        return seconds


def _device_path() -> str:
    return f"/machine/peripheral/{CXL_DEVICE}"


def _optional(args: dict[str, Any], **values: int | None) -> dict[str, Any]:
    """QMP arguments with the optional ones given (``bank_group`` → ``bank-group``)."""
    args.update({k.replace("_", "-"): v for k, v in values.items() if v is not None})
    return args


def inject_general_media(lab: Lab, *, dpa: int, descriptor: int = 0, type_: int = 0,
                         transaction_type: int = 1, log: str = "informational",
                         channel: int | None = None, rank: int | None = None) -> Any:
    """QMP ``cxl-inject-general-media-event`` on the lab's Type-3 device (QEMU 10)."""
    args: dict[str, Any] = {"path": _device_path(), "log": log, "flags": 1, "dpa": dpa,
                            "descriptor": descriptor, "type": type_,
                            "transaction-type": transaction_type}
    return lab.qmp.cmd("cxl-inject-general-media-event",
                       **_optional(args, channel=channel, rank=rank))


def inject_dram(lab: Lab, *, dpa: int, descriptor: int = 0, type_: int = 0,
                transaction_type: int = 1, log: str = "informational", flags: int = 0,
                channel: int | None = None, rank: int | None = None,
                bank_group: int | None = None, bank: int | None = None,
                row: int | None = None, column: int | None = None,
                nibble_mask: int | None = None) -> Any:
    """QMP ``cxl-inject-dram-event``: a DRAM event record (CXL r3.0 Table 8-44); the
    optional fields given are the ones QEMU marks valid."""
    args: dict[str, Any] = {"path": _device_path(), "log": log, "flags": flags, "dpa": dpa,
                            "descriptor": descriptor, "type": type_,
                            "transaction-type": transaction_type}
    return lab.qmp.cmd("cxl-inject-dram-event", **_optional(
        args, channel=channel, rank=rank, bank_group=bank_group, bank=bank, row=row,
        column=column, nibble_mask=nibble_mask))


def inject_memory_module(lab: Lab, *, type_: int = 0, health_status: int = 0,
                         media_status: int = 0, additional_status: int = 0,
                         life_used: int = 0, temperature: int = 30,
                         dirty_shutdown_count: int = 0, corrected_volatile: int = 0,
                         corrected_persistent: int = 0, log: str = "informational",
                         flags: int = 0) -> Any:
    """QMP ``cxl-inject-memory-module-event``: a memory module event record with the
    device's health information (CXL r3.0 Table 8-45 and Table 8-100)."""
    return lab.qmp.cmd("cxl-inject-memory-module-event", **{
        "path": _device_path(), "log": log, "flags": flags, "type": type_,
        "health-status": health_status, "media-status": media_status,
        "additional-status": additional_status, "life-used": life_used,
        "temperature": temperature, "dirty-shutdown-count": dirty_shutdown_count,
        "corrected-volatile-error-count": corrected_volatile,
        "corrected-persistent-error-count": corrected_persistent})


def inject_poison(lab: Lab, *, start: int, length: int = 64) -> Any:
    """QMP ``cxl-inject-poison``: add ``[start, start+length)`` (DPA, 64-byte aligned) to
    the device's poison list. No event: the guest sees it when it reads the list
    (``trigger_poison_list``), as a ``cxl_poison`` trace event of type List."""
    return lab.qmp.cmd("cxl-inject-poison", path=_device_path(), start=start, length=length)
