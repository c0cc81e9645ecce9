"""[watch] trace_buffer_kb: the watcher sizes its own trace instance's buffer (issue 14).

On synthetic trees under tmp roots (tests/unit/ingest/test_trace_overrun.py's tree plus
the instance's ``buffer_size_kb``). The kernel prints that file as ``%lu`` KiB, or
``%lu (expanded: %lu)`` before the buffer was first used (tracing_entries_read in
kernel/trace/trace.c, https://github.com/torvalds/linux/blob/master/kernel/trace/trace.c).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from memras.cli import main
from memras.config import SCHEMA, Key, Table
from memras.host import Host
from memras.host.tracefs import (
    DEFAULT_BUFFER_KB,
    MAX_BUFFER_KB,
    MIN_BUFFER_KB,
    Tracefs,
    buffer_has_size,
    parse_buffer_kb,
)
from memras.ingest.sources import TraceSource
from tests.unit.ingest.test_trace_overrun import INSTANCE, _tracefs_root


def _root(tmp_path: Path, size: str) -> Path:
    root = _tracefs_root(tmp_path)
    (root / INSTANCE / "buffer_size_kb").write_text(size)
    return root


def _size(root: Path) -> str:
    return (root / INSTANCE / "buffer_size_kb").read_text()


def test_buffer_size_kb_parses_as_the_kernel_prints_it() -> None:
    assert parse_buffer_kb("1408\n") == 1408
    assert parse_buffer_kb("7 (expanded: 1408)\n") == 1408  # not yet used: its size to be
    for other in ("", "X\n", "-1\n", "1408 KiB\n", "7 (expanded: )\n"):
        assert parse_buffer_kb(other) is None, other


def test_the_source_sizes_its_own_instance(tmp_path: Path) -> None:
    root = _root(tmp_path, "1408\n")
    source = TraceSource(Host(root), buffer_kb=16384)
    source.start(None)
    source.stop()
    assert _size(root) == "16384"  # one write(2) over "1408\n", as the kernel takes it
    assert source._setup is not None and source._setup.buffer_kb == 16384
    # only memras's instance: the global buffer's file (there is one in the tree) is untouched
    assert not (root / "sys/kernel/tracing/buffer_size_kb").exists()


def test_a_buffer_of_that_size_already_is_not_written(tmp_path: Path) -> None:
    # a restart must leave the buffer, and the events it holds unread, as they are: a
    # write here would leave "16384" over the first bytes of the line
    root = _root(tmp_path, "7 (expanded: 16384)\n")
    setup = Tracefs(Host(root).fs).setup(buffer_kb=16384)
    assert _size(root) == "7 (expanded: 16384)\n"
    assert setup.buffer_kb == 16384
    # the kernel rounds up to whole pages: what it reads back after a write of 16384
    # (4113 pages of 4080 bytes, lab guest 6.1) is that size, not a reason to write again
    root3 = _root(tmp_path / "c", "16387\n")
    assert Tracefs(Host(root3).fs).setup(buffer_kb=16384).buffer_kb == 16387
    assert _size(root3) == "16387\n"
    assert not buffer_has_size(16380, 16384) and not buffer_has_size(16388, 16384)
    # no size asked for: none written, the size there reported
    root2 = _root(tmp_path / "b", "1408\n")
    assert Tracefs(Host(root2).fs).setup().buffer_kb == 1408 and _size(root2) == "1408\n"


def test_a_size_the_kernel_refuses_is_one_warning_and_the_old_size(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _root(tmp_path, "1408\n")
    # a directory where the file should be: the write fails as a refused kernel write
    # (ENOMEM for a size the machine cannot give) does
    (root / INSTANCE / "buffer_size_kb").unlink()
    (root / INSTANCE / "buffer_size_kb").mkdir()
    with caplog.at_level("WARNING", logger="memras.host.tracefs"):
        setup = Tracefs(Host(root).fs).setup(buffer_kb=65536)
    assert setup.enabled and setup.buffer_kb is None  # the source still runs
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "cannot size the trace buffer to 65536 KiB per CPU" in warning
    assert "lower [watch] trace_buffer_kb" in warning


def test_a_simulated_root_has_no_instance_to_size(tmp_path: Path) -> None:
    assert main(["sim", "create", "qemu-guest", str(tmp_path / "s")]) == 0
    root = tmp_path / "s" / "root"
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    setup = Tracefs(Host(root).fs).setup(buffer_kb=16384)
    assert setup.buffer_kb is None and setup.instance_dir is None
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_watch_takes_the_size_from_the_config(tmp_path: Path) -> None:
    root = _root(tmp_path, "1408\n")
    config = tmp_path / "memras.toml"
    config.write_text("[watch]\ntrace_buffer_kb = 4096\n")
    assert main(["--root", str(root), "--db", str(tmp_path / "w.db"), "--config",
                 str(config), "watch", "--once", "--sources", "trace"]) == 0
    assert _size(root) == "4096\n"
    config.write_text("[watch]\ntrace_buffer_kb = 32\n")  # below the minimum: refused
    assert main(["--root", str(root), "--db", str(tmp_path / "w.db"), "--config",
                 str(config), "watch", "--once", "--sources", "trace"]) == 2
    assert _size(root) == "4096\n"


def test_the_schema_key_is_the_tracefs_default_and_range() -> None:
    table = SCHEMA.keys["watch"]
    assert isinstance(table, Table)
    key = table.keys["trace_buffer_kb"]
    assert isinstance(key, Key) and key.type == "int"
    assert (key.min, key.default, key.max) == (MIN_BUFFER_KB, DEFAULT_BUFFER_KB, MAX_BUFFER_KB)
