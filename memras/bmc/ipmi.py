"""IPMI through Debian's ``ipmitool``: the chassis identify LED and the SEL.

Why the tool and not a Python IPMI stack: ipmitool is what the field engineer already
has and trusts, it speaks both the in-band driver (``-I open``: /dev/ipmi0 through the
kernel's ipmi_si/ipmi_devintf) and RMCP+ (``-I lanplus``), and its SEL decoder carries
the vendors' OEM slot decodes memras would otherwise re-implement.

Credentials: the password is read from ``[bmc] password_file`` (mode 600, checked) and
handed to ipmitool in its environment (``-E`` reads ``IPMI_PASSWORD``): never on the
command line, where ``ps`` would show it to every user, and never in a message.

The LED: IPMI has one standard locator, the chassis identify LED (Chassis Identify,
NetFn 00h cmd 04h: ``chassis identify force`` = on until turned off, ``chassis identify
0`` = off). A DIMM's own fault LED exists on many boards but only behind OEM raw
commands that differ per vendor and generation; memras sends none of those (a wrong
raw command on a production BMC is worse than an unlit LED) and says so in its result.

Safety gate: with ``MEMRAS_FORBID_REAL_WRITES=1`` (the test suite sets it) the in-band
interface refuses to change an LED: that would be this machine's BMC.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from memras.bmc.config import BmcConfig
from memras.errors import BmcError, Refused
from memras.text import escape

IPMITOOL = "ipmitool"
FORBID_ENV = "MEMRAS_FORBID_REAL_WRITES"
# ipmitool's lanplus prints this on stderr when the BMC lacks the cipher-suite query
# (OpenIPMI's ipmi_sim, many older BMCs), then goes on with a default suite: not an
# error, but the query's retries cost seconds per call (docs/performance.md, "BMC slot
# LED"): such a BMC wants [bmc] cipher_suite
_NOISE = ("Unable to Get Channel Cipher Suites",)


@dataclass(frozen=True)
class IpmiResult:
    argv: tuple[str, ...]  # without any secret (there is none on it)
    stdout: str


class Ipmitool:
    """One BMC reached through ipmitool as ``[bmc]`` says."""

    def __init__(self, config: BmcConfig, *, binary: str = IPMITOOL) -> None:
        self.config = config
        self.binary = binary

    def argv(self, args: Sequence[str]) -> list[str]:
        cfg = self.config
        argv = [self.binary, "-I", cfg.interface]
        if cfg.interface == "lanplus":
            argv += ["-H", str(cfg.address), "-U", str(cfg.user), "-E"]
            if cfg.port:
                argv += ["-p", str(cfg.port)]
            if cfg.cipher_suite is not None:
                argv += ["-C", str(cfg.cipher_suite)]
        return argv + list(args)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("IPMI_PASSWORD", None)
        if self.config.interface == "lanplus":
            env["IPMI_PASSWORD"] = self.config.password()
        env["TZ"] = "UTC"  # SEL times printed in UTC, whatever this host's zone
        env["LC_ALL"] = "C"
        return env

    def run(self, args: Sequence[str]) -> IpmiResult:
        argv = self.argv(args)
        shown = " ".join(argv)
        try:
            proc = subprocess.run(argv, env=self._env(), capture_output=True, text=True,
                                  errors="replace", timeout=self.config.timeout_s,
                                  stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError:
            raise BmcError(f"{self.binary} is not installed",
                           hint="apt-get install ipmitool") from None
        except subprocess.TimeoutExpired:
            raise BmcError(f"`{shown}` did not answer within {self.config.timeout_s:g} s",
                           hint=f"is {self.config.describe()} reachable? "
                                "([bmc] timeout)") from None
        if proc.returncode != 0:
            why = _first_error(proc.stderr) or f"exit status {proc.returncode}"
            raise BmcError(f"`{shown}` failed: {escape(why)}",
                           hint=_hint(why, self.config))
        return IpmiResult(tuple(argv), proc.stdout)

    # --- the LED ------------------------------------------------------------------
    def identify(self, on: bool) -> IpmiResult:
        """Chassis identify on (``force``: until turned off) or off (interval 0)."""
        if self.config.interface == "open" and os.environ.get(FORBID_ENV) == "1":
            raise Refused("not changing this machine's own chassis LED "
                          f"({FORBID_ENV}=1)", hint="use a lanplus BMC in tests")
        return self.run(["chassis", "identify", "force" if on else "0"])

    # --- the SEL --------------------------------------------------------------------
    def sel_lines(self) -> list[str]:
        """``sel elist``: one line per record (memras.bmc.sel reads them)."""
        return self.run(["sel", "elist"]).stdout.splitlines()


def _first_error(stderr: str) -> str:
    for line in stderr.splitlines():
        line = line.strip()
        if line and not line.startswith(_NOISE):
            return line
    return ""


def _hint(why: str, config: BmcConfig) -> str:
    low = why.lower()
    if "session" in low or "rakp" in low or "password" in low:
        return ("check [bmc] address, port, user and password_file; the BMC must allow "
                "this user IPMI over LAN (RMCP+)")
    if "could not open device" in low or "/dev/ipmi" in low:
        return "load the in-band driver: modprobe ipmi_si ipmi_devintf"
    return f"is {config.describe()} the BMC you meant?"


__all__ = ["IPMITOOL", "IpmiResult", "Ipmitool"]
