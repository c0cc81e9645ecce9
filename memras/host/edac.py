"""EDAC memory controllers: /sys/devices/system/edac/mc (drivers/edac/edac_mc_sysfs.c).

Per controller ``mcN/`` and per populated DIMM ``dimmM/`` (or ``rankM/`` on
csrow-based drivers such as amd64_edac). The legacy ``csrowK/`` tree is read when
present (it is being removed from the kernel) and never required.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from memras.host._fs import KernelFs

EDAC_MC_DIR = "/sys/devices/system/edac/mc"
_LOCATION_RE = re.compile(r"(\w+)\s+(\d+)")


@dataclass(frozen=True, slots=True)
class EdacDimm:
    mc: int
    name: str  # "dimm3" or "rank1"
    label: str
    location: dict[str, int]  # dimm_location "channel 0 slot 1 " -> {"channel": 0, "slot": 1}
    size_mb: int
    mem_type: str
    dev_type: str
    edac_mode: str
    ce_count: int
    ue_count: int

    @property
    def layers(self) -> tuple[int, ...]:
        """Layer positions in the order the driver lists them (rasdaemon's mc.top.mid.low)."""
        return tuple(self.location.values())

    @property
    def location_text(self) -> str:
        return " ".join(f"{k} {v}" for k, v in self.location.items())

    @property
    def key(self) -> str:
        """``mc:top:mid:low`` as ras-mc-ctl prints it (-1 for an absent layer)."""
        layers = list(self.layers) + [-1] * (3 - len(self.layers))
        return ":".join(str(x) for x in [self.mc, *layers[:3]])


@dataclass(frozen=True, slots=True)
class EdacCsrowChannel:
    csrow: int
    channel: int
    label: str
    ce_count: int


@dataclass(frozen=True, slots=True)
class EdacController:
    index: int
    mc_name: str
    size_mb: int
    ce_count: int
    ue_count: int
    ce_noinfo_count: int
    ue_noinfo_count: int
    seconds_since_reset: int
    max_location: str
    dimms: list[EdacDimm] = field(default_factory=list)
    csrows: list[EdacCsrowChannel] = field(default_factory=list)


def parse_dimm_location(text: str) -> dict[str, int]:
    """``channel 0 slot 1 `` -> {"channel": 0, "slot": 1}; order kept."""
    return {name: int(num) for name, num in _LOCATION_RE.findall(text)}


class Edac:
    def __init__(self, fs: KernelFs) -> None:
        self.fs = fs

    @property
    def present(self) -> bool:
        return bool(self.controller_indexes())

    def controller_indexes(self) -> list[int]:
        return sorted(int(n[2:]) for n in self.fs.listdir(EDAC_MC_DIR)
                      if n.startswith("mc") and n[2:].isdigit())

    def read_controller(self, index: int) -> EdacController:
        base = f"{EDAC_MC_DIR}/mc{index}"

        def num(name: str) -> int:
            return self.fs.read_int(f"{base}/{name}", default=0)

        return EdacController(
            index=index,
            mc_name=self.fs.read(f"{base}/mc_name", default=""),
            size_mb=num("size_mb"),
            ce_count=num("ce_count"),
            ue_count=num("ue_count"),
            ce_noinfo_count=num("ce_noinfo_count"),
            ue_noinfo_count=num("ue_noinfo_count"),
            seconds_since_reset=num("seconds_since_reset"),
            max_location=self.fs.read(f"{base}/max_location", default="").strip(),
            dimms=self._dimms(index),
            csrows=self._csrows(index),
        )

    def _dimms(self, mc: int) -> list[EdacDimm]:
        base = f"{EDAC_MC_DIR}/mc{mc}"
        names = [n for n in self.fs.listdir(base)
                 if re.fullmatch(r"(dimm|rank)\d+", n)]
        names.sort(key=lambda n: (n.rstrip("0123456789"), int(re.sub(r"\D", "", n))))
        out = []
        for name in names:
            d = f"{base}/{name}"
            out.append(EdacDimm(
                mc=mc,
                name=name,
                label=self.fs.read(f"{d}/dimm_label", default=""),
                location=parse_dimm_location(self.fs.read(f"{d}/dimm_location", default="")),
                size_mb=self.fs.read_int(f"{d}/size", default=0),
                mem_type=self.fs.read(f"{d}/dimm_mem_type", default=""),
                dev_type=self.fs.read(f"{d}/dimm_dev_type", default=""),
                edac_mode=self.fs.read(f"{d}/dimm_edac_mode", default=""),
                ce_count=self.fs.read_int(f"{d}/dimm_ce_count", default=0),
                ue_count=self.fs.read_int(f"{d}/dimm_ue_count", default=0),
            ))
        return out

    def _csrows(self, mc: int) -> list[EdacCsrowChannel]:
        base = f"{EDAC_MC_DIR}/mc{mc}"
        out = []
        for name in self.fs.listdir(base):
            m = re.fullmatch(r"csrow(\d+)", name)
            if not m:
                continue
            for f in self.fs.listdir(f"{base}/{name}"):
                cm = re.fullmatch(r"ch(\d+)_ce_count", f)
                if cm:
                    ch = int(cm.group(1))
                    out.append(EdacCsrowChannel(
                        csrow=int(m.group(1)), channel=ch,
                        label=self.fs.read(f"{base}/{name}/ch{ch}_dimm_label", default=""),
                        ce_count=self.fs.read_int(f"{base}/{name}/{f}", default=0),
                    ))
        return sorted(out, key=lambda c: (c.csrow, c.channel))

    def controllers(self) -> list[EdacController]:
        return [self.read_controller(i) for i in self.controller_indexes()]

    def dimms(self) -> list[EdacDimm]:
        return [d for c in self.controllers() for d in c.dimms]

    # --- writes -----------------------------------------------------------------
    def reset_counters(self, mc: int) -> None:
        """Zero mcN's CE/UE counters (and its DIMMs'), as a reboot would."""
        self.fs.write(f"{EDAC_MC_DIR}/mc{mc}/reset_counters", "1")

    def set_label(self, mc: int, dimm_name: str, label: str) -> None:
        """Write dimm_label (at most 31 characters, as the kernel allows)."""
        if len(label) > 31:
            raise ValueError("EDAC labels are at most 31 characters")
        self.fs.write(f"{EDAC_MC_DIR}/mc{mc}/{dimm_name}/dimm_label", label)

    def set_csrow_label(self, mc: int, csrow: int, channel: int, label: str) -> None:
        """Write csrowR/chC_dimm_label (the legacy node edac-utils' labels.db targets)."""
        if len(label) > 31:
            raise ValueError("EDAC labels are at most 31 characters")
        self.fs.write(f"{EDAC_MC_DIR}/mc{mc}/csrow{csrow}/ch{channel}_dimm_label", label)
