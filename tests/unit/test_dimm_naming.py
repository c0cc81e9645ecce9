"""One naming of DIMMs: every name resolves, a typo exits 2 with the closest names, and a
database from another machine shows its DIMMs by label (memras.topology.naming,
memras.health.dimm_names), through ``memras.cli.main`` in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memras.cli import main
from memras.health.dimm_names import DimmNames, attribute_from_host
from memras.host import Host
from memras.records import MemoryFailureEvent, Source
from memras.sim import profiles
from memras.sim.actions import inject_ce
from memras.store import Store
from memras.topology.inventory import DimmInfo, dimm_inventory, resolve_dimm
from memras.topology.naming import display_name, display_names, wide_name
from tests.corpus.loader import REAL_DIR, load

# rasdaemon's mc_event trace format (ras-mc-handler.c), as tests/unit/test_cli_ingest.py
MC_LINE = ("rasdaemon-1234 [000] ..... {ts:.6f}: mc_event: 1 Corrected error: memory read "
           "error on {label} (mc:{mc} location:{top}:{mid}:-1 address:0x{addr:08x} grain:32 "
           "syndrome:0x00000000 area:DRAM socket:{socket} rank:0)")
BOOT = "2026-01-01T00:00:00+00:00"
# A real skx-era line from another machine (radiasoft/devops#134, in the real corpus):
# EDAC MC1 channel 0 slot 0, i.e. health's key mc1:0:0:-1, label CPU_SrcID#1_Ha#0_Chan#0_DIMM#0.
FOREIGN_LOG = "sb_edac-syslog-no-host-radiasoft-devops-134"
FOREIGN_LABEL = "CPU_SrcID#1_Ha#0_Chan#0_DIMM#0"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _forms(d: DimmInfo) -> list[str]:
    """Every name a person or a tool may use for ``d``."""
    forms = [d.id, d.id.upper()]
    if d.edac is not None:
        forms += [d.edac.label, d.edac.label.lower(), f"mc{d.edac.mc}/{d.edac.name}",
                  f"mc{d.edac.key}"]
    if d.smbios is not None:
        forms += [d.smbios.locator, d.smbios.locator.lower(), d.smbios.bank_locator,
                  d.smbios.serial]
    if d.acpi_device:
        forms.append(d.acpi_device)
    return [f for f in forms if f]


@pytest.mark.parametrize("profile", ["demo", "skylake-2s"])
def test_every_accepted_form_resolves(tmp_path: Path, profile: str) -> None:
    host = profiles.create(profile, tmp_path).host()
    inventory = dimm_inventory(host)
    assert inventory
    for d in inventory:
        for form in _forms(d):
            assert resolve_dimm(host, form, inventory=inventory).id == d.id, form


def test_display_rule_slot_locator_then_edac_label_then_id(tmp_path: Path) -> None:
    sk = {d.id: d for d in dimm_inventory(profiles.create("skylake-2s", tmp_path / "s").host())}
    assert display_name(sk["mc0/dimm4"]) == "P1-DIMMC1"
    assert wide_name(sk["mc0/dimm4"]) == "P1-DIMMC1 (CPU_SrcID#0_MC#0_Chan#2_DIMM#0, mc0/dimm4)"
    qemu = dimm_inventory(profiles.create("qemu-guest", tmp_path / "q").host())
    shown = {d.id: (display_name(d), wide_name(d)) for d in qemu}
    assert shown["DIMM_0"] == ("DIMM 0", "DIMM 0 (DIMM_0)")  # SMBIOS locator; id beside it
    assert shown["PNP0C80:00"] == ("PNP0C80:00", "PNP0C80:00")  # a hot-plugged pc-dimm: ACPI only


@pytest.fixture
def skylake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """skylake-2s with 3 CEs on P1-DIMMC1 (mc0 chan 2) and 2 on P2-DIMMA1 (mc2 chan 0)."""
    root = tmp_path / "skx"
    profiles.create("skylake-2s", root)
    lines = [MC_LINE.format(ts=100.0 + i, label="CPU_SrcID#0_MC#0_Chan#2_DIMM#0", mc=0, top=2,
                            mid=0, socket=0, addr=0x1000_0000 + 0x1000 * i) for i in range(3)]
    lines += [MC_LINE.format(ts=200.0 + i, label="CPU_SrcID#1_MC#0_Chan#0_DIMM#0", mc=2, top=0,
                             mid=0, socket=1, addr=0x2000_0000 + 0x1000 * i) for i in range(2)]
    trace = tmp_path / "trace.txt"
    trace.write_text("\n".join(lines) + "\n")
    db = str(tmp_path / "m.db")
    code, _, _ = _run(capsys, "--root", str(root), "import", "trace", str(trace), "--db", db,
                      "--boot-time", BOOT)
    assert code == 0
    return str(root), db


def test_errors_by_any_name_return_that_dimms_errors(skylake, capsys) -> None:
    root, db = skylake
    (dimm,) = [d for d in dimm_inventory(Host(Path(root))) if d.id == "mc0/dimm4"]
    assert dimm.smbios is not None
    for name in ["P1-DIMMC1", "p1-dimmc1", "CPU_SrcID#0_MC#0_Chan#2_DIMM#0", "mc0/dimm4",
                 "P0_Node0_Channel2_Dimm0", dimm.smbios.serial, "mc0:2:0:-1"]:
        code, out, _ = _run(capsys, "--root", root, "--json", "errors", "--db", db,
                            "--dimm", name)
        rows = json.loads(out)
        assert code == 0 and len(rows) == 3, name
        assert {(r["dimm_id"], r["dimm_name"]) for r in rows} == {("mc0/dimm4", "P1-DIMMC1")}
    code, out, _ = _run(capsys, "--root", root, "--json", "summary", "--db", db,
                        "--dimm", "P2-DIMMA1")
    assert code == 0 and json.loads(out)["totals"][0]["events"] == 2
    code, out, _ = _run(capsys, "--root", root, "errors", "--db", db)
    assert "P1-DIMMC1" in out and "P2-DIMMA1" in out  # the DIMM column shows slot names


@pytest.mark.parametrize(("argv", "said"), [
    (["errors", "--dimm", "P1-DIMMC2"], "did you mean: P1-DIMMC1"),
    (["summary", "--dimm", "P1-DIMMX1"], "did you mean"),
    (["verdicts", "--history", "P1-DIMMC2"], "P1-DIMMC1"),
    (["errors", "--dimm", "P1-DIMM"], "'P1-DIMM' names 6 DIMMs"),
    (["locate", "--dimm", "nonesuch"], "no DIMM called 'nonesuch'"),
])
def test_an_unknown_name_exits_2_with_the_closest_names(skylake, capsys, argv, said) -> None:
    root, db = skylake
    extra = [] if argv[0] == "locate" else ["--db", db]
    code, out, err = _run(capsys, "--root", root, *argv, *extra)
    assert code == 2 and out == "" and said in err, err


def test_verdicts_name_the_dimm_and_history_takes_any_name(skylake, capsys) -> None:
    root, db = skylake
    code, out, _ = _run(capsys, "--root", root, "--json", "verdicts", "--db", db)
    shown = {v["dimm"]: v["dimm_name"] for v in json.loads(out)}
    assert code == 0 and shown == {"mc0/dimm4": "P1-DIMMC1", "mc2/dimm0": "P2-DIMMA1"}
    code, out, _ = _run(capsys, "--root", root, "verdicts", "--db", db, "--history", "p2-dimma1")
    assert code == 0  # resolved (no verdicts recorded by an import: only replayed ones)


def test_foreign_database_has_identities_and_labels(tmp_path: Path, capsys) -> None:
    """A real log from another machine, imported where no inventory describes it."""
    empty = tmp_path / "no-inventory"
    empty.mkdir()
    log = tmp_path / "dmesg.txt"
    log.write_text(load(REAL_DIR / f"{FOREIGN_LOG}.toml").text)
    db = str(tmp_path / "f.db")
    root = ["--root", str(empty)]
    assert _run(capsys, *root, "import", "dmesg", str(log), "--db", db, "--year", "2021")[0] == 0
    rows = json.loads(_run(capsys, *root, "--json", "errors", "--db", db)[1])
    assert rows and {r["dimm_id"] for r in rows} == {"mc1:0:0:-1"}  # not null
    assert {r["dimm_name"] for r in rows} == {FOREIGN_LABEL}
    code, out, _ = _run(capsys, *root, "verdicts", "--db", db)
    assert code == 0 and FOREIGN_LABEL in out
    assert out.splitlines()[1].startswith(FOREIGN_LABEL)  # the DIMM column is the label
    code, out, _ = _run(capsys, *root, "--json", "errors", "--db", db, "--dimm",
                        FOREIGN_LABEL.lower())
    assert code == 0 and len(json.loads(out)) == len(rows)
    code, _, err = _run(capsys, *root, "errors", "--db", db, "--dimm", "CPU_SrcID#1_Ha#0_Chan#1")
    assert code == 2 and FOREIGN_LABEL in err


def test_rows_stored_before_attribution_are_found_and_then_attributed(tmp_path: Path) -> None:
    """A memory_failure row has only its page: the demo's memory map names the DIMM."""
    server = profiles.create("demo", tmp_path / "demo")
    host = server.host()
    target = next(d for d in dimm_inventory(host) if d.acpi_device == "PNP0C80:00")
    page = (4 << 30) >> 12  # the first page of PNP0C80:00 (demo: 4 GiB, past the PCI hole)
    with Store.open(tmp_path / "m.db") as store:
        store.add_events([MemoryFailureEvent(pfn=page, page_type="dirty LRU page",
                                             action_result="Recovered", source=Source.TRACE)])
        assert [e.dimm_id for e in store.errors()] == [None]
        attribute_from_host(store, host)
        assert [e.dimm_id for e in store.errors()] == [target.id]
        names = DimmNames.of(host, store)
        assert names.display(target.id) == display_name(target)
        assert len(store.errors(dimm=names.error_filter(target.smbios.serial))) == 1


def test_a_locator_on_every_socket_is_shown_with_its_bank(tmp_path: Path, capsys) -> None:
    """ghes boards print DIMM_A0 on each socket: names must tell them apart, and the
    shared locator alone names two DIMMs (exit 2), never the first one found."""
    root = tmp_path / "ghes"
    host = profiles.create("ghes", root).host()
    shown = display_names(dimm_inventory(host))
    assert len(set(shown.values())) == len(shown) == 12
    assert {shown["mc0/dimm0"], shown["mc0/dimm6"]} == {"N0 DIMM_A0", "N1 DIMM_A0"}
    code, out, err = _run(capsys, "--root", str(root), "locate", "--dimm", "DIMM_A0")
    assert code == 2 and "names 2 DIMMs" in err and "N1 DIMM_A0" in err
    code, out, _ = _run(capsys, "--root", str(root), "--json", "locate", "--dimm", "n1 dimm_a0")
    assert code == 0 and json.loads(out)["name"] == "N1 DIMM_A0"


def test_labels_show_names_the_dimm_each_edac_node_is(tmp_path: Path, capsys) -> None:
    root = tmp_path / "skx"
    profiles.create("skylake-2s", root)
    labeldb = tmp_path / "dimm_labels.db"
    labeldb.write_text("Vendor: Supermicro\nModel: X11DPi-N\n  BOARD-C1: 0.2.0;\n")
    code, out, _ = _run(capsys, "--root", str(root), "--json", "labels", "show",
                        "--labeldb", str(labeldb))
    (entry,) = json.loads(out)["labels"]
    assert code == 0 and (entry["node"], entry["dimm_name"]) == ("mc0/dimm4", "P1-DIMMC1")


def test_the_watcher_stores_each_error_with_its_dimm(tmp_path: Path, capsys) -> None:
    """`memras watch --once` on the demo: the simulator's skx_edac CEs (kmsg and trace,
    stored once) carry the inventory id the health engine judged them under."""
    root = tmp_path / "demo"
    profiles.create("demo", root)
    inject_ce(root, "P2-DIMMB1", count=3)
    db = str(tmp_path / "m.db")
    code, _, _ = _run(capsys, "--root", str(root), "watch", "--once", "--db", db)
    assert code == 0
    rows = json.loads(_run(capsys, "--root", str(root), "--json", "errors", "--db", db)[1])
    assert rows and {(r["dimm_id"], r["dimm_name"]) for r in rows} == {("mc2/dimm2", "P2-DIMMB1")}
