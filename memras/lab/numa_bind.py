"""Run a command bound to one NUMA node, as ``numactl --membind=N --physcpubind=C`` would
(the lab's initramfs has no numactl): ``set_mempolicy(MPOL_BIND, {N})`` through the raw
system call, ``sched_setaffinity`` to CPU C, then ``exec`` — the memory policy and the
affinity are kept across execve (mempolicy(7), sched_setaffinity(2)). Standard library
only: it runs in the guest.

    python3 numa_bind.py --node 1 --cpu 1 -- python3 workload.py --mib 96 …
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys

SYS_SET_MEMPOLICY = 238  # x86_64 (arch/x86/entry/syscalls/syscall_64.tbl)
MPOL_PREFERRED, MPOL_BIND = 1, 2  # include/uapi/linux/mempolicy.h
MASK_BITS = 64


def bind_memory(node: int, mode: int = MPOL_BIND) -> None:
    if not 0 <= node < MASK_BITS:
        raise SystemExit(f"numa_bind: node {node} is outside 0..{MASK_BITS - 1}")
    libc = ctypes.CDLL(None, use_errno=True)
    mask = ctypes.c_ulong(1 << node)
    # maxnode counts one more than the mask's bits: the kernel's get_nodes() drops one
    if libc.syscall(SYS_SET_MEMPOLICY, mode, ctypes.byref(mask), MASK_BITS + 1) != 0:
        err = ctypes.get_errno()
        raise SystemExit(f"numa_bind: set_mempolicy({mode}, node {node}): "
                         f"{os.strerror(err)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="numa_bind")
    p.add_argument("--node", type=int, required=True)
    p.add_argument("--cpu", type=int)
    p.add_argument("--preferred", action="store_true", help="MPOL_PREFERRED: node N first, "
                   "others when it has no memory (a node that may go away)")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give the command to run after --")
    bind_memory(args.node, MPOL_PREFERRED if args.preferred else MPOL_BIND)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
