"""``memras locate`` and ``memras dimms`` on the ``cxl`` simulator profile, and a CXL
event stream through ``memras import`` into a memdev's verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memras.cli import main
from memras.sim import profiles

REGION = 0x290000000


@pytest.fixture
def cxl(tmp_path: Path) -> tuple[str, str]:
    profiles.create("cxl", tmp_path / "srv")
    return str(tmp_path / "srv"), str(tmp_path / "memras.db")


def test_locate_names_memdev_dpa_region_and_dax(cxl, capsys) -> None:
    root, db = cxl
    assert main(["--root", root, "--db", db, "locate", hex(REGION + 0x3040)]) == 0
    out = capsys.readouterr().out
    assert "CXL memdev   mem1 (0000:0e:00.0, serial 0x1)" in out
    assert "DPA          0x1040" in out and "region0 (interleave position 1)" in out
    assert "zone         Movable" in out and "node         1" in out
    assert main(["--root", root, "--db", db, "--json", "locate", str(REGION + 0x40)]) == 0
    got = json.loads(capsys.readouterr().out)["cxl"]
    assert (got["memdev"], got["dpa"], got["dax"], got["block"]) == ("mem0", 0x40, "dax0.0", 82)
    assert main(["--root", root, "--db", db, "--json", "locate", "0x1000"]) == 0
    assert json.loads(capsys.readouterr().out)["cxl"] is None


def test_dimms_lists_memdevs_with_their_verdicts(cxl, capsys, tmp_path: Path) -> None:
    root, db = cxl
    trace = tmp_path / "trace.txt"
    hdr = ("memdev=mem0 host=0000:0d:00.0 serial=0 log=Failure : time=1733356800000000000 "
           "uuid=fe927475-dd59-4339-a586-79bab113b774 len=128 flags='' handle=1 "
           "related_handle=0 maint_op_class=0 : ")
    trace.write_text(
        "  kworker/u8:3-112 [001] ..... 600.000000: cxl_memory_module: " + hdr
        + "event_type='Life Used Change' health_status='' media_status='Normal' "
        "as_life_used=Critical as_dev_temp=Normal as_cor_vol_err_cnt=Normal "
        "as_cor_per_err_cnt=Normal life_used=96 device_temp=40 dirty_shutdown_cnt=0 "
        "cor_vol_err_cnt=0 cor_per_err_cnt=0\n")
    assert main(["--root", root, "--db", db, "import", "trace", str(trace)]) == 0
    capsys.readouterr()
    assert main(["--root", root, "--db", db, "--json", "dimms"]) == 0
    rows = {c["id"]: c for c in json.loads(capsys.readouterr().out)["cxl"]}
    assert set(rows) == {"mem0", "mem1"}
    assert rows["mem0"]["verdict"] == "replace-at-next-maintenance"
    assert rows["mem0"]["rules"] == ["cxl-failure-log", "cxl-life-used-90"]
    assert rows["mem1"]["verdict"] == "ok" and rows["mem1"]["block_list"] == [82, 83, 84, 85]
    assert main(["--root", root, "--db", db, "dimms"]) == 0
    out = capsys.readouterr().out
    assert "MEMDEV" in out and "mem0" in out and "82-85" in out


def test_watch_stores_cxl_trace_events_and_the_memdev_is_judged(cxl, capsys) -> None:
    """The trace source hands media errors and the other CXL records to the store."""
    root, db = cxl
    hdr = ("memdev=mem1 host=0000:0e:00.0 serial=1 log=Informational : "
           "time=1733356800000000000 uuid=fbcd0a77-c260-417f-85a9-088b1621eba6 len=128 "
           "flags='' handle=3 related_handle=0 maint_op_class=0 : ")
    media = ("  kworker/u8:3-112 [001] ..... 700.000000: cxl_general_media: " + hdr
             + "dpa=1040 dpa_flags='' descriptor='' type='ECC Error' transaction_type='Host "
             "Read' channel=0 rank=0 device=0 comp_id=00 00 validity_flags='CHANNEL|RANK' "
             "hpa=290003040 region=region0 region_uuid=5a8f0c2e-1d3b-4e6f-9a7c-2b4d6e8f0a1c")
    module = ("  kworker/u8:3-112 [001] ..... 701.000000: cxl_memory_module: "
              + hdr.replace("handle=3", "handle=4")
              + "event_type='Health Status Change' health_status='MAINTENANCE_NEEDED' "
              "media_status='Normal' as_life_used=Normal as_dev_temp=Normal "
              "as_cor_vol_err_cnt=Normal as_cor_per_err_cnt=Normal life_used=5 "
              "device_temp=40 dirty_shutdown_cnt=0 cor_vol_err_cnt=1 cor_per_err_cnt=0")
    with open(Path(root) / ".memras-sim" / "trace", "a") as f:
        f.write(media + "\n" + module + "\n")
    assert main(["--root", root, "--db", db, "watch", "--once"]) == 0
    assert "trace     2      2" in capsys.readouterr().out
    assert main(["--root", root, "--db", db, "--json", "errors"]) == 0
    error, module = json.loads(capsys.readouterr().out)  # the health record is listed too
    assert (error["record"], error["address"], error["type"]) == (
        "error", REGION + 0x3040, "Corrected")
    assert (module["record"], module["type"], module["cxl"]["event"]) == (
        "cxl", "Info", "memory_module")
    assert main(["--root", root, "--db", db, "--json", "dimms"]) == 0
    rows = {c["id"]: c for c in json.loads(capsys.readouterr().out)["cxl"]}
    assert rows["mem1"]["verdict"] == "watch"
    assert "cxl-maintenance-needed" in rows["mem1"]["rules"]
