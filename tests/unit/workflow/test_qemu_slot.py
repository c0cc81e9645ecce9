"""The qemu backend finds the DIMM by slot as the guest kernel shows the ACPI _UID;
the lab's kill -9 at an exact crash point.

Linux prints QEMU's integer _UID of a DIMM slot as "0x01" (seen in the lab guest:
replacements there went to ``memras-dimm0x01`` and to the first free slot, not to
"the slot of the old module", before this was parsed)."""

from __future__ import annotations

from memras.plugins.backends.qemu import _matches, slot_number

from memras.workflow.backends import Target


def test_slot_number_reads_hex_and_decimal_uids() -> None:
    assert slot_number("0x01") == 1 and slot_number("1") == 1 and slot_number("0x0A") == 10
    assert slot_number(None) is None and slot_number("MP01") is None


def test_the_dimm_in_the_slot_matches_whatever_its_address() -> None:
    target = Target(dimm_id="PNP0C80:01", label="", locator="", serial="", part="",
                    blocks=(34, 35), block_size=128 << 20, slot="0x01")
    in_slot = {"type": "dimm", "data": {"slot": 1, "addr": 0, "size": 0}}
    other = {"type": "dimm", "data": {"slot": 0, "addr": 0x100000000, "size": 256 << 20}}
    by_range = {"type": "dimm", "data": {"slot": 3, "addr": 34 * (128 << 20),
                                         "size": 256 << 20}}
    assert _matches(in_slot, target) and not _matches(other, target)
    assert _matches(by_range, target)  # no slot match: the address range decides


def test_kill_at_a_crash_point_is_a_real_sigkill(tmp_path) -> None:
    """``MEMRAS_TEST_KILL_AT`` (the lab's kill -9 inside a step) ends the process by
    SIGKILL exactly there; other points pass, and every point is logged."""
    import os
    import signal
    import subprocess
    import sys

    log = tmp_path / "points"
    code = ("from memras.workflow.runner import crash_point as c; "
            "c('step:offline_blocks:before'); c('block:3:offline:after'); c('never')")
    env = {**os.environ, "MEMRAS_TEST_KILL_AT": "block:3:offline:after",
           "MEMRAS_TEST_CRASH_LOG": str(log)}
    done = subprocess.run([sys.executable, "-c", code], env=env, check=False)
    assert done.returncode == -signal.SIGKILL
    assert log.read_text().split() == ["step:offline_blocks:before", "block:3:offline:after"]
