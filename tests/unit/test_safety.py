"""The test suite's own safety net works: writes to the host's kernel files fail."""

import pytest

from memras.errors import NotPermitted
from memras.host import Host


def test_audit_hook_blocks_sysfs_write():
    with pytest.raises(PermissionError), open("/sys/devices/system/memory/auto_online_blocks", "w"):
        pass


def test_host_refuses_real_root_write_even_when_allowed():
    host = Host("/", allow_real_writes=True)
    with pytest.raises(NotPermitted):
        host.memory.set_state(0, "offline")


def test_host_refuses_real_root_write_by_default(monkeypatch):
    monkeypatch.delenv("MEMRAS_FORBID_REAL_WRITES")
    host = Host("/")
    with pytest.raises(NotPermitted):
        host.memory.soft_offline_page(0x1000)


def test_reading_real_sys_is_fine():
    host = Host("/")
    # This machine has memory blocks; reading them must work and write nothing.
    if host.memory.present:
        assert host.memory.block_size() > 0
