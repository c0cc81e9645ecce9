"""``[bmc]`` of memras.toml → :class:`BmcConfig` (checked against memras.config.SCHEMA).

An empty or absent table means "no BMC": the workflow lights nothing and the watcher
reads no SEL. The password never sits in the file itself: ``password_file`` names a
private file (mode 600, as memras.config.read_secret_file insists), and neither the
path's content nor the password is ever printed, logged or put on a command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memras.config import ConfigFile, parse_duration, read_secret_file
from memras.errors import UsageError

KINDS = ("ipmi", "redfish")
INTERFACES = ("open", "lanplus")


@dataclass(frozen=True)
class BmcConfig:
    kind: str = "ipmi"
    interface: str = "open"
    address: str | None = None
    port: int | None = None
    cipher_suite: int | None = None
    user: str | None = None
    password_file: str | None = None
    verify_tls: bool = True
    ca_file: str | None = None
    timeout_s: float = 20.0
    led: bool = True
    sel_interval_s: float = 60.0

    @classmethod
    def from_section(cls, raw: dict[str, Any]) -> BmcConfig:
        kind = str(raw.get("kind", "ipmi"))
        if kind not in KINDS:
            raise UsageError(f"[bmc] kind = {kind!r}: use ipmi or redfish")
        interface = str(raw.get("interface", "open"))
        if interface not in INTERFACES:
            raise UsageError(f"[bmc] interface = {interface!r}: use open or lanplus")
        cfg = cls(kind=kind, interface=interface, address=raw.get("address"),
                  port=raw.get("port"), cipher_suite=raw.get("cipher_suite"),
                  user=raw.get("user"),
                  password_file=raw.get("password_file"),
                  verify_tls=bool(raw.get("verify_tls", True)), ca_file=raw.get("ca_file"),
                  timeout_s=parse_duration(raw.get("timeout", "20s"), what="timeout",
                                           table="[bmc]"),
                  led=bool(raw.get("led", True)),
                  sel_interval_s=parse_duration(raw.get("sel_interval", "60s"),
                                                what="sel_interval", table="[bmc]"))
        cfg.check()
        return cfg

    def check(self) -> None:
        """What the kind and interface need, each missing key in one line."""
        remote = self.kind == "redfish" or self.interface == "lanplus"
        if remote and not self.address:
            raise UsageError(f"[bmc] {self.where()} needs address",
                             hint='add address = "HOST" (redfish: "https://HOST")')
        if remote and (not self.user or not self.password_file):
            raise UsageError(f"[bmc] {self.where()} needs user and password_file",
                             hint="put the password alone in a file, chmod 600, and name it "
                                  "in password_file")

    def where(self) -> str:
        return "kind = \"redfish\"" if self.kind == "redfish" else \
            f"interface = \"{self.interface}\""

    @property
    def remote(self) -> bool:
        return self.kind == "redfish" or self.interface == "lanplus"

    def password(self) -> str:
        """The password (checked: regular file, mode 600, ours); never shown."""
        if not self.password_file:
            raise UsageError("[bmc] has no password_file")
        return read_secret_file(self.password_file, "[bmc] password_file")

    def describe(self) -> str:
        """Where the BMC is, for messages: never the password or its file's content."""
        if self.kind == "redfish":
            return f"Redfish service {self.address}"
        if self.interface == "open":
            return "this host's BMC (ipmitool -I open)"
        port = f":{self.port}" if self.port else ""
        return f"BMC {self.address}{port} (ipmitool -I lanplus, user {self.user})"


def bmc_config(config: ConfigFile) -> BmcConfig | None:
    """The configured BMC, or None when ``[bmc]`` is absent or empty."""
    raw = config.section("bmc")
    return BmcConfig.from_section(raw) if raw else None


__all__ = ["BmcConfig", "bmc_config"]
