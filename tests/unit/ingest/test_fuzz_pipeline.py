"""Hypothesis through parser -> store -> health (and the live watcher), not parsers alone.

The parsers' own fuzz tests call the parsers only, which is how a value the store could
not bind (page:0xffffffffffffffff) ended import and watch with exit 70. These run real
corpus lines, mutated (tests/corpus/hostile.py), through ``run_import`` into a store with
the health engine judging what is stored, and through KmsgSource and Watcher on a
simulated root. This is the CI subset (~2,000 examples, derandomized so a failure
reproduces); bench/fuzz_pipeline.py runs the same checks on >= 100,000.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.corpus.hostile import Pipeline, hostile_line, hostile_text, rasdaemon_rows


def ci(examples: int) -> settings:
    """Deadline-free (the machine is shared), derandomized (a failure reproduces)."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    p = Pipeline()
    yield p
    p.close()


@ci(700)
@given(data=hostile_text("dmesg"))
def test_dmesg(pipeline: Pipeline, data: bytes) -> None:
    pipeline.import_bytes("dmesg", data)


@ci(300)
@given(data=hostile_text("trace"))
def test_trace(pipeline: Pipeline, data: bytes) -> None:
    pipeline.import_bytes("trace", data)


@ci(250)
@given(data=hostile_text("mcelog", max_lines=30))
def test_mcelog(pipeline: Pipeline, data: bytes) -> None:
    pipeline.import_bytes("mcelog", data)


@ci(250)
@given(data=hostile_text("ras-mc-ctl"))
def test_ras_mc_ctl(pipeline: Pipeline, data: bytes) -> None:
    pipeline.import_ras_mc_ctl(data)


@ci(300)
@given(rows=rasdaemon_rows())
def test_rasdaemon_db(pipeline: Pipeline, rows: list) -> None:
    pipeline.import_rasdaemon_rows(rows)


@ci(150)
@given(lines=st.lists(hostile_line("dmesg"), min_size=1, max_size=4))
def test_watch(pipeline: Pipeline, lines: list[bytes]) -> None:
    pipeline.watch_lines(lines)


def test_the_examples_reached_the_store_and_its_bounds(pipeline: Pipeline) -> None:
    """The mutations are not all thrown away by the parsers: rows were stored, some of
    them flagged, and the health engine saw them (else the fuzz tests would prove
    nothing about the store). Runs after the tests above (file order)."""
    t = pipeline.totals
    assert t.examples >= 1900
    assert t.inserted > 500 and t.flagged > 50 and t.health_changes > 0
    assert t.watch_lines > 0
