"""A Redfish service (DMTF DSP0268): the Memory resource of a slot and its locator LED.

Finding the slot: ``/redfish/v1/`` → ``Systems`` → each ComputerSystem's ``Memory``
collection → each Memory resource; a resource is the slot when one of its names
equals one of the slot's names (case-insensitive): ``DeviceLocator`` (SMBIOS type 17's
locator, what dmidecode and EDAC labels show), ``Location.PartLocation.ServiceLabel``
(the silkscreen label, Memory v1.7+), ``Id`` or ``Name``. Two resources matching is
an error: lighting the wrong slot is worse than lighting none.

The LED: ``PATCH {"LocationIndicatorActive": true|false}`` on the Memory resource
(Memory v1.10+, DSP0268 2020.3), with ``If-Match`` when the service gave an ETag, then
a GET reads it back: the result says what the service reports, not what was asked.
A service whose Memory lacks the property is told plainly (older ones only have
Chassis ``IndicatorLED``, which lights the whole box, not the slot).

Transport: httpx, HTTP Basic with ``[bmc] user`` and the password from
``password_file`` (never logged); TLS verified unless ``verify_tls = false``,
``ca_file`` adds a CA. A plain ``http://`` address is accepted (an emulator on
localhost) but then the password crosses the wire in the clear: use https.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memras.bmc.config import BmcConfig
from memras.errors import BmcError
from memras.text import escape

PROPERTY = "LocationIndicatorActive"


@dataclass(frozen=True)
class MemorySlot:
    uri: str  # the Memory resource's @odata.id
    names: tuple[str, ...]  # DeviceLocator, ServiceLabel, Id, Name (those present)
    led: bool | None  # LocationIndicatorActive now (None: the resource lacks it)
    etag: str | None = None


@dataclass
class LedWrite:
    uri: str
    sent: dict[str, Any]
    read_back: bool | None
    status: int
    extra: dict[str, Any] = field(default_factory=dict)


def _names(doc: dict[str, Any]) -> tuple[str, ...]:
    location = (doc.get("Location") or {}).get("PartLocation") or {}
    found = [doc.get("DeviceLocator"), location.get("ServiceLabel"), doc.get("Id"),
             doc.get("Name")]
    return tuple(str(n) for n in found if isinstance(n, str) and n)


def match_slot(members: list[tuple[str, dict[str, Any]]], wanted: list[str]
               ) -> tuple[str, dict[str, Any]] | None:
    """The one Memory resource one of ``wanted`` names (pure; BmcError if several)."""
    keys = {w.strip().lower() for w in wanted if w and w.strip()}
    hits = [(uri, doc) for uri, doc in members
            if keys & {n.lower() for n in _names(doc)}]
    if len(hits) > 1:
        raise BmcError(f"{len(hits)} Memory resources are called "
                       f"{' or '.join(sorted(keys))}: "
                       + ", ".join(uri for uri, _ in hits),
                       hint="name the slot by its DeviceLocator")
    return hits[0] if hits else None


class RedfishClient:
    def __init__(self, config: BmcConfig, *, transport: Any = None) -> None:
        try:
            import httpx  # imported here: only a Redfish BMC needs it
        except ImportError:
            raise BmcError("a Redfish BMC needs the httpx package",
                           hint="pip install 'memras[bmc]'") from None

        self.config = config
        base = str(config.address or "").rstrip("/")
        if "://" not in base:
            base = f"https://{base}"
        self.base = base
        verify: Any = config.verify_tls
        if config.ca_file and config.verify_tls:
            import ssl

            verify = ssl.create_default_context(cafile=config.ca_file)
        self._httpx = httpx
        self.client = httpx.Client(
            base_url=base, auth=(str(config.user), config.password()), verify=verify,
            timeout=config.timeout_s, transport=transport,
            headers={"Accept": "application/json", "OData-Version": "4.0"})

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RedfishClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, uri: str, **kw: Any) -> Any:
        try:
            resp = self.client.request(method, uri, **kw)
        except self._httpx.HTTPError as exc:
            raise BmcError(f"Redfish {method} {self.base}{uri}: {escape(str(exc))}",
                           hint=f"is {self.config.describe()} reachable? ([bmc] address, "
                                "verify_tls, ca_file)") from None
        if resp.status_code in (401, 403):
            raise BmcError(f"Redfish {method} {uri}: HTTP {resp.status_code} (not allowed)",
                           hint="check [bmc] user and password_file")
        if resp.status_code >= 400:
            raise BmcError(f"Redfish {method} {uri}: HTTP {resp.status_code} "
                           f"{escape(_message(resp))}")
        return resp

    def get(self, uri: str) -> tuple[dict[str, Any], str | None]:
        resp = self._request("GET", uri)
        try:
            doc = resp.json()
        except ValueError:
            raise BmcError(f"Redfish GET {uri}: the answer is not JSON") from None
        if not isinstance(doc, dict):
            raise BmcError(f"Redfish GET {uri}: the answer is not a JSON object")
        return doc, resp.headers.get("ETag")

    def _members(self, uri: str) -> list[str]:
        doc, _ = self.get(uri)
        return [m["@odata.id"] for m in doc.get("Members") or []
                if isinstance(m, dict) and isinstance(m.get("@odata.id"), str)]

    def memory(self) -> list[tuple[str, dict[str, Any]]]:
        """Every Memory resource of every system, as (uri, document)."""
        root, _ = self.get("/redfish/v1/")
        systems_uri = (root.get("Systems") or {}).get("@odata.id", "/redfish/v1/Systems")
        out = []
        for system_uri in self._members(systems_uri):
            system, _ = self.get(system_uri)
            memory_uri = (system.get("Memory") or {}).get("@odata.id") or \
                f"{system_uri.rstrip('/')}/Memory"
            for uri in self._members(memory_uri):
                doc, _ = self.get(uri)
                out.append((uri, doc))
        return out

    def find_slot(self, names: list[str]) -> MemorySlot:
        members = self.memory()
        hit = match_slot(members, names)
        if hit is None:
            known = ", ".join(sorted({(_names(d) or (u,))[0] for u, d in members})) or "none"
            raise BmcError(f"no Memory resource called {' or '.join(n for n in names if n)} "
                           f"on {self.config.describe()} (it has: {escape(known)})",
                           hint="the slot's DeviceLocator (dmidecode -t 17 Locator) is the "
                                "name to use")
        uri, _doc = hit
        doc, etag = self.get(uri)  # fresh, with its ETag
        value = doc.get(PROPERTY)
        return MemorySlot(uri, _names(doc), value if isinstance(value, bool) else None, etag)

    def set_led(self, slot: MemorySlot, on: bool) -> LedWrite:
        if slot.led is None:
            raise BmcError(f"{slot.uri} has no {PROPERTY} (Memory v1.10+ has it)",
                           hint="this service cannot light a DIMM slot; the chassis "
                                "IndicatorLED would light the whole server")
        payload = {PROPERTY: on}
        headers = {"If-Match": slot.etag} if slot.etag else {}
        resp = self._request("PATCH", slot.uri, json=payload, headers=headers)
        doc, _ = self.get(slot.uri)
        value = doc.get(PROPERTY)
        return LedWrite(slot.uri, payload, value if isinstance(value, bool) else None,
                        resp.status_code)


def _message(resp: Any) -> str:
    try:
        doc = resp.json()
        return str(((doc.get("error") or {}).get("message")) or "")[:200]
    except ValueError:
        return resp.text[:200]


__all__ = ["PROPERTY", "LedWrite", "MemorySlot", "RedfishClient", "match_slot"]
