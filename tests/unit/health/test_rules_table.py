"""Every rule a verdict can cite is in one table, and the user guide shows that table."""

from __future__ import annotations

import re
from pathlib import Path

from memras.health.buckets import DEFAULT_THRESHOLDS, threshold_rule_id
from memras.health.classify import ClassifyParams, classify_dimm
from memras.health.config import parse_config
from memras.health.engine import HealthEngine
from memras.health.rules import RULES, rule_for, rules_markdown

from . import test_classify as shapes
from ._events import ce

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "user-guide.md"


def _guide_table() -> str:
    text = GUIDE.read_text()
    begin, end = "<!-- rules-table: begin -->\n", "<!-- rules-table: end -->"
    return text[text.index(begin) + len(begin):text.index(end)]


def test_the_user_guide_carries_the_code_table_verbatim() -> None:
    assert _guide_table() == rules_markdown(), "run: python -m memras.health.rules"
    ids = re.findall(r"^\| `([^`]+)` \|", _guide_table(), re.M)
    assert ids == [r.id for r in RULES] and len(set(ids)) == len(ids)


def test_every_default_threshold_rule_is_documented() -> None:
    for (scope, severity), threshold in DEFAULT_THRESHOLDS.items():
        if threshold is not None:
            rule = rule_for(threshold_rule_id(scope, severity, threshold))
            assert rule is not None and rule.config.startswith(f"[thresholds.{scope}]")
    assert rule_for("site-bank-ce-5/24h") is not None
    assert rule_for("sun-x4140-5/24h") is not None and rule_for("srds22-nothing") is None


def test_every_rule_the_classifier_emits_is_documented() -> None:
    for _, build, _, _ in shapes.CASES:
        for rule in classify_dimm(build(), ClassifyParams()).rules:
            assert rule_for(rule) is not None, rule


def test_every_rule_the_engine_emits_is_documented() -> None:
    configs = ["[page]\naction='off'",
               "[verdict]\nsun_ce_per_24h = 5\n[thresholds.bank]\nce='3/1h'"]
    histories = [
        [ce(i * 30.0, rank=0, bank=i % 8, row=i, column=i) for i in range(40)],  # storm, sun
        [ce(i * 600.0, rank=0, bank=2, row=r, column=0x40) for i, r in enumerate(range(14))],
        [ce(0, ue=True)],
        [ce(i * 5.0, address=0x5040, rank=0, bank=1, row=1, column=1) for i in range(3)],
    ]
    seen: set[str] = set()
    for toml in configs:
        for events in histories:
            e = HealthEngine(parse_config(toml))
            seen.update(r for c in e.process(events) for r in c.rule_ids)
            seen.update(r for v in e.verdicts().values() for r in v.rules)
    assert {"ue", "storm", "srds22-column", "mcelog-dimm-ce-10/24h"} <= seen
    undocumented = sorted(r for r in seen if rule_for(r) is None)
    assert not undocumented
