"""Which preflight refusals the wizard offers to lift (memras.workflow.driver), the size
the reserve override reads (memras.text.parse_bytes, `memras replace --reserve`'s too),
and a retry recorded as a new replacement with the option in its select row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from memras.audit.service import AuditTrail
from memras.errors import UsageError, WorkflowError
from memras.host import Host
from memras.sim.profiles import create
from memras.store import Store
from memras.text import parse_bytes
from memras.workflow.driver import OVERRIDES, WizardDriver, overridden, overrides_for
from memras.workflow.preflight import SKIPPED
from memras.workflow.runner import ReplaceOptions
from memras.workflow.states import State

BY_OPTION = {o.option: o for o in OVERRIDES}


def check(name: str, ok: bool = False, detail: str = "why", **data: Any) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail, **data}


def refused(*checks: dict[str, Any], mapping: str = "mapped", cxl: bool = False,
            state: str = "refused") -> dict[str, Any]:
    target = {"dimm_id": "label:mem0" if cxl else "mc0/dimm2",
              "cxl": {"memdev": "mem0"} if cxl else None}
    return {"state": state, "checks": [check("privileges", True), *checks],
            "target": {"target": target, "mapping": mapping}}


CASES = [
    ("kernel zone", refused(check("zones")), ["force_zone"]),
    ("node reserve", refused(check("node reserve", nodes=[])), ["force_node"]),
    ("both node checks: one key", refused(check("node reserve", nodes=[]),
                                          check("node movable")), ["force_node"]),
    ("reserve and zones", refused(check("zones"), check("memory reserve")),
     ["force_zone", "reserve_bytes"]),
    ("cxl interleaved, blockless checks skipped",
     refused(check("mapping"), check("zones", detail=SKIPPED),
             check("memory reserve", detail=SKIPPED), mapping="interleaved", cxl=True),
     ["whole_region"]),
    ("a DIMM interleaved: no flag lifts it",
     refused(check("mapping"), check("zones", detail=SKIPPED), mapping="interleaved"), []),
    ("zones, but the backend refuses too", refused(check("zones"), check("backend acpi")), []),
    ("the lock", refused(check("lock")), []),
    ("node figures unreadable ([workflow] node_reserve)",
     refused(check("node reserve"), check("node movable")), []),
    ("not refused: rolled back", refused(check("zones"), state="rolled-back"), []),
    ("refused with no failed check", refused(), []),
]


@pytest.mark.parametrize(("snapshot", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_overrides_offered(snapshot: dict[str, Any], expected: list[str]) -> None:
    assert [o.option for o in overrides_for(snapshot)] == expected


def test_keys_and_flags_are_unique_and_name_options() -> None:
    assert len({o.key for o in OVERRIDES}) == len({o.flag for o in OVERRIDES}) == len(OVERRIDES)
    fields = ReplaceOptions.__dataclass_fields__
    assert all(o.option in fields and o.risk and o.does for o in OVERRIDES)


def test_overridden_says_the_flags_the_options_carry() -> None:
    assert overridden(ReplaceOptions()) == []
    assert overridden(ReplaceOptions(force_zone=True, reserve_bytes=128 << 20)) == [
        "--force-zone", "--reserve 128M"]


@pytest.mark.parametrize(("text", "size"), [
    ("4G", 4 << 30), ("4GiB", 4 << 30), ("4gb", 4 << 30), ("512m", 512 << 20),
    ("1.5T", 3 << 39), ("1024", 1024), ("0", 0), (" 2G ", 2 << 30)])
def test_parse_bytes(text: str, size: int) -> None:
    assert parse_bytes(text) == size


@pytest.mark.parametrize("text", ["lots", "-1G", "", "G", "nanG", "infG", "1e999G"])
def test_parse_bytes_refuses_in_one_line(text: str) -> None:
    with pytest.raises(UsageError, match="not a size") as info:
        parse_bytes(text)
    assert info.value.hint == "use e.g. 4G"


def test_retry_is_a_new_replacement_with_the_option_in_its_select_row(tmp_path: Path) -> None:
    server = create("demo", tmp_path / "root")
    memory = Host(server.root, allow_real_writes=True).memory
    memory.set_state(40, "offline")
    memory.set_state(40, "online_kernel")  # P1-DIMMB1's memory40 now in ZONE_NORMAL
    with Store.open(tmp_path / "memras.db") as store:
        driver = WizardDriver(Host(server.root, allow_real_writes=True), store,
                              ReplaceOptions(operator="Ada"))
        first = driver.begin("P1-DIMMB1")
        assert first.state is State.REFUSED
        assert [o.option for o in overrides_for(first.snapshot)] == ["force_zone"]
        second = driver.retry(BY_OPTION["force_zone"], True)
        assert second.state is State.CHECKED and second.snapshot["id"] != first.snapshot["id"]
        with pytest.raises(WorkflowError, match="only a replacement preflight refused"):
            driver.retry(BY_OPTION["force_zone"], True)
        driver.abort()
        selects = [e for e in AuditTrail(store).list() if e.action == "select"]
    assert [e.data["options"]["force_zone"] for e in selects] == [False, True]
    assert selects[1].actor["operator"] == "Ada"
