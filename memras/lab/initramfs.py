"""A rootless initramfs: static busybox, the modules the guest needs, and an init script.

The init script turns the guest into "this host's userland on the guest's kernel":
it mounts the host root read-only over 9p at /mnt, mounts the guest's OWN
proc/sys/dev/debugfs/tracefs on top (the host's /sys is never visible through
the share), puts tmpfs on the paths programs write to (/tmp, /run, /var/lib,
/var/tmp, /var/log), chroots into /mnt and starts a shell on ttyS0 with
``MEMRAS_LAB_GUEST=1``. The kernel's own console goes to ttyS1 (a log file on the
host), so command output on ttyS0 is never interleaved with printk lines.

A tmpfs hides what the host had under that path. A CI checkout can live under
/tmp, so every path in ``keep`` (the checkout, its venv) is bind-mounted aside
before the tmpfs mounts and moved back afterwards when it was hidden.

Packing is ``busybox cpio -o -H newc`` piped into gzip level 1, so no host cpio is
needed. Images are cached by a hash of their inputs.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from memras.errors import LabError
from memras.lab.kernel import Kernel, load_order, module_index

BUSYBOX = Path("/bin/busybox")
BUSYBOX_HINT = "run: apt-get install busybox-static"

# virtio_pci and 9pnet_virtio are not named by 9p's depends=, so they are asked for.
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p")
# Error injectors for the scenarios, and virtio-mem for capacity tests.
# virtio_net's depends= pulls net_failover and failover in first.
NET_MODULES = ("virtio_net",)
TEST_MODULES = ("mce_inject", "hwpoison_inject", "notifier_error_inject",
                "memory_notifier_error_inject", "virtio_mem")
# A guest with a QEMU guest agent channel (LabConfig.guest_agent): virtio-serial ports.
AGENT_MODULES = ("virtio_console",)

TMPFS_PATHS = ("/tmp", "/run", "/var/lib", "/var/tmp", "/var/log")
READY_BANNER = "MEMRAS-LAB-READY"
SHELL_STARTING = "memras-lab init: starting the shell on ttyS0"  # init's last line on ttyS1
SCRATCH = "/run/memras-lab"
GUEST_IP = "10.0.2.15"  # = memras.lab.guest.GUEST_IP (guest imports this module)

INIT_TEMPLATE = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /mnt /keep
mount -t proc proc /proc
mount -t devtmpfs dev /dev
echo "memras-lab init: loading modules"
for m in $(cat /modules.order); do
  insmod /modules/$m || echo "memras-lab init: insmod $m failed"
done
# QEMU user-mode network (memras.lab.guest): static, no DHCP client needed.
ip link set lo up
if ip link set eth0 up 2>/dev/null; then
  ip addr add GUEST_IP/24 dev eth0 && ip route add default via 10.0.2.2 ||
    echo "memras-lab init: cannot configure eth0"
fi
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /mnt || {
  echo "memras-lab init: cannot mount the host root over 9p"; poweroff -f; }
mount -t proc proc /mnt/proc
mount -t sysfs sys /mnt/sys
mount -t devtmpfs dev /mnt/dev
mount -t debugfs none /mnt/sys/kernel/debug
mount -t tracefs none /mnt/sys/kernel/tracing
mkdir -p /mnt/dev/pts && mount -t devpts devpts /mnt/dev/pts
i=0
for p in KEEP_PATHS; do
  i=$((i+1)); mkdir -p /keep/$i
  [ -d "/mnt$p" ] && mount -o bind "/mnt$p" /keep/$i
done
for t in TMPFS_PATHS; do mount -t tmpfs -o mode=1777 lab "/mnt$t"; done
i=0
for p in KEEP_PATHS; do
  i=$((i+1))
  if [ -d "/keep/$i" ] && [ ! -d "/mnt$p" ]; then
    mkdir -p "/mnt$p" && mount -o move /keep/$i "/mnt$p"
  fi
done
mkdir -p /mnt/SCRATCH/home
echo "memras-lab init: starting the shell on ttyS0"
export MEMRAS_LAB_GUEST=1 TMPDIR=/tmp HOME=/SCRATCH/home PYTHONDONTWRITEBYTECODE=1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=vt100
# PID 1 stays here: when the shell exits (a user typed `exit`), a new one starts.
while :; do
  chroot /mnt /usr/bin/setsid --ctty --wait /bin/sh -c \
    'stty -F /dev/ttyS0 cols 200 rows 50 2>/dev/null; echo READY_BANNER; exec /bin/sh -i' \
    </dev/ttyS0 >/dev/ttyS0 2>&1
  echo "memras-lab init: the console shell exited; starting another"
done
"""


def init_script(keep: Sequence[Path]) -> str:
    """The guest's /init for the given paths that must stay visible."""
    keep_words = " ".join(shlex.quote(str(p)) for p in keep) or "''"
    return (INIT_TEMPLATE
            .replace("KEEP_PATHS", keep_words)
            .replace("TMPFS_PATHS", " ".join(TMPFS_PATHS))
            .replace("/SCRATCH", SCRATCH)
            .replace("READY_BANNER", READY_BANNER)
            .replace("GUEST_IP", GUEST_IP))


def ensure_initramfs(kernel: Kernel, cache: Path, keep: Sequence[Path],
                     extra_modules: Sequence[str] = ()) -> Path:
    """A cached ``initrd-<hash>.gz`` for this kernel, these kept paths and extra modules."""
    if not BUSYBOX.is_file():
        raise LabError(f"{BUSYBOX} not found", hint=BUSYBOX_HINT)
    modules = load_order((*BOOT_MODULES, *NET_MODULES, *TEST_MODULES, *extra_modules),
                         module_index(kernel))
    script = init_script(keep)
    digest = _digest(kernel, modules, script)
    target = cache / "initramfs" / f"initrd-{kernel.version}-{digest}.gz"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="memras-initramfs-") as tmp:
        tree = Path(tmp)
        _populate(tree, modules, script)
        _pack(tree, target)
    return target


def _digest(kernel: Kernel, modules: list[Path], script: str) -> str:
    h = hashlib.sha256(script.encode())
    h.update(kernel.version.encode())
    for path in (BUSYBOX, *modules):
        st = path.stat()
        h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def _populate(tree: Path, modules: list[Path], script: str) -> None:
    (tree / "bin").mkdir()
    shutil.copy2(BUSYBOX, tree / "bin" / "busybox")
    (tree / "modules").mkdir()
    for ko in modules:
        shutil.copy2(ko, tree / "modules" / ko.name)
    (tree / "modules.order").write_text("\n".join(ko.name for ko in modules) + "\n")
    init = tree / "init"
    init.write_text(script)
    init.chmod(0o755)


def _pack(tree: Path, target: Path) -> None:
    """``find . | busybox cpio -o -H newc | gzip -1 > target`` (atomically)."""
    names = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
    listing = ("\n".join([".", *names]) + "\n").encode()
    proc = subprocess.run([str(BUSYBOX), "cpio", "-o", "-H", "newc"], cwd=tree,
                          input=listing, capture_output=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"busybox cpio failed: {proc.stderr.decode(errors='replace').strip()}",
                       hint=BUSYBOX_HINT)
    # this process's own partial file: two test runs side by side (scripts/test.sh) may
    # build the same cached initramfs at once, and a shared name interleaved their writes
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    with gzip.open(partial, "wb", compresslevel=1) as out:
        out.write(proc.stdout)
    os.replace(partial, target)
