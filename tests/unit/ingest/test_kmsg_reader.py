"""/dev/kmsg reading: the real device of this machine (read-only) and tailed files."""

from __future__ import annotations

import os

from memras.host import Host
from memras.host.kmsg import KmsgReader, record_seq


def test_record_seq_table():
    cases = [
        ("6,1234,5678901,-;EDAC MC0: 1 CE memory read error", 1234),
        ("4,7,0,c,caller=T1;text", 7),
        ("no record here", None),
        ("6,x,1,-;bad seq", None),
        ("", None),
    ]
    for raw, expected in cases:
        assert record_seq(raw) == expected, raw


def test_real_dev_kmsg_is_readable_and_ordered():
    host = Host("/")
    if not os.access(host.kmsg.path(), os.R_OK):
        import pytest

        pytest.skip(f"{host.kmsg.path()} not readable by this user (needs root)")
    with host.kmsg.open() as reader:
        assert reader.is_device
        got = reader.read(0.0, max_records=50)
    seqs = [record_seq(r) for r in got.records]
    assert seqs and all(s is not None for s in seqs)
    assert seqs == sorted(seqs)


def test_tailed_file_returns_complete_records_only(tmp_path):
    path = tmp_path / "kmsg"
    path.write_text("6,1,10,-;first\n SUBSYSTEM=memory\n6,2,20,-;second\n6,3,30,-;thi")
    with KmsgReader(str(path)) as reader:
        got = reader.read(0.0)
        assert got.records == ["6,1,10,-;first\n SUBSYSTEM=memory", "6,2,20,-;second"]
        with open(path, "a") as f:
            f.write("rd\n")
        assert reader.read(0.0).records == ["6,3,30,-;third"]
