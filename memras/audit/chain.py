"""The audit trail's hash chain: what makes an edited, deleted or reordered row visible.

Each audit row holds ``seq`` (1, 2, 3… with no gaps), its ``payload`` (a JSON object),
``prev_hash`` (the previous row's hash; 64 zeros for the first) and ``hash`` =
sha256(prev_hash ‖ canonical JSON of payload). A separate head record keeps the row
count and the last hash, so cutting rows off the end is caught as well.

:func:`verify_chain` walks the rows in ``seq`` order and names each problem:

- **edited**: the stored hash is not the hash of the row's content;
- **deleted**: a gap in ``seq`` (or a prev_hash that matches no earlier row);
- **reordered**: a row's prev_hash is the hash of a row that is not its predecessor
  (rows whose ``seq`` values were swapped still hash correctly, but link wrongly);
- **truncated**: fewer rows, or another last hash, than the head records.

The head is the anchor: someone who can rewrite both the table and the head can forge a
shorter history. Copy the head hash elsewhere (``memras audit verify --json`` prints it)
and pass it back with ``--expect-head`` to close that gap.

The hash is over the payload alone (not ``seq``) on purpose: swapping two rows' ``seq``
then leaves each row self-consistent and the checker can say "reordered" rather than
"edited twice".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_json(payload: Mapping[str, Any]) -> str:
    """One spelling per object: sorted keys, no spaces, UTF-8 kept, no NaN."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=str)


def row_hash(prev_hash: str, payload: Mapping[str, Any]) -> str:
    """sha256 over the previous hash and the canonical payload, as lowercase hex."""
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_json(payload).encode("utf-8"))
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ChainRow:
    seq: int
    prev_hash: str
    hash: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChainProblem:
    kind: str  # edited | deleted | reordered | truncated | head
    seq: int | None
    detail: str

    def __str__(self) -> str:
        where = f"row {self.seq}: " if self.seq is not None else ""
        return f"{self.kind}: {where}{self.detail}"


@dataclass(frozen=True, slots=True)
class ChainReport:
    rows: int
    last_hash: str
    problems: tuple[ChainProblem, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems


def _link_problem(row: ChainRow, all_hashes: dict[str, int]) -> ChainProblem:
    if row.prev_hash in all_hashes or row.prev_hash == GENESIS_HASH:
        after = all_hashes.get(row.prev_hash, 0)
        return ChainProblem("reordered", row.seq,
                            f"it was written after row {after} but is stored elsewhere")
    return ChainProblem("deleted", row.seq,
                        "the row written before it is missing (deleted or replaced)")


def verify_chain(rows: Iterable[ChainRow], *, head_count: int | None,
                 head_hash: str | None, expect_head: str | None = None) -> ChainReport:
    """Check every row and the head; return all problems found, each naming its row."""
    ordered = sorted(rows, key=lambda r: r.seq)
    problems: list[ChainProblem] = []
    all_hashes = {row.hash: row.seq for row in ordered}
    prev_hash, prev_seq = GENESIS_HASH, 0
    for row in ordered:
        if row_hash(row.prev_hash, row.payload) != row.hash:
            problems.append(ChainProblem("edited", row.seq,
                                         "its content does not match its stored hash"))
        if row.seq != prev_seq + 1 and row.prev_hash not in all_hashes:
            missing = f"{prev_seq + 1}" if row.seq == prev_seq + 2 else \
                f"{prev_seq + 1}..{row.seq - 1}"
            problems.append(ChainProblem("deleted", row.seq,
                                         f"row(s) {missing} before it are missing"))
        elif row.prev_hash != prev_hash:
            problems.append(_link_problem(row, all_hashes))
        prev_hash, prev_seq = row.hash, row.seq
    already_deleted = any(p.kind == "deleted" for p in problems)
    problems.extend(_head_problems(len(ordered), prev_hash, head_count, head_hash,
                                   expect_head, already_deleted))
    return ChainReport(rows=len(ordered), last_hash=prev_hash, problems=tuple(problems))


def _head_problems(count: int, last_hash: str, head_count: int | None,
                   head_hash: str | None, expect_head: str | None,
                   already_deleted: bool) -> list[ChainProblem]:
    problems: list[ChainProblem] = []
    if head_count is None or head_hash is None:
        if count:
            problems.append(ChainProblem("head", None, "the head record is missing"))
    elif head_hash != last_hash and count < head_count:
        problems.append(ChainProblem(
            "truncated", None,
            f"the head records {head_count} rows ending in {head_hash[:12]}…, but "
            f"{count} remain: the last {head_count - count} row(s) were deleted"))
    elif head_hash != last_hash:
        problems.append(ChainProblem("head", None,
                                     "the last row is not the one the head records"))
    elif count != head_count and not already_deleted:
        problems.append(ChainProblem(
            "deleted", None, f"the head records {head_count} rows but {count} remain"))
    if expect_head is not None and expect_head != last_hash:
        problems.append(ChainProblem("head", None,
                                     "the last hash differs from the one you expected"))
    return problems
