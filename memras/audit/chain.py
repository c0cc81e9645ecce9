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

Someone who can rewrite both the table and the head can forge a shorter history, so
the head is also anchored outside the database on every append (the anchor file, syslog,
hooks: :mod:`memras.audit.anchor`) and ``verify`` compares against the anchor file;
``--expect-head`` compares with a head hash recorded anywhere else.

The hash is over the payload alone (not ``seq``) on purpose: swapping two rows' ``seq``
then leaves each row self-consistent and the checker can say "reordered" rather than
"edited twice".

**Algorithms.** A row whose payload has ``"chain": {"alg": "hmac-sha256", "key": ID}``
is hashed with HMAC-SHA256 under the key whose id is ``ID`` (see
:class:`memras.audit.anchor.ChainKey`); a row without ``chain`` (or with ``"alg":
"sha256"``) is plain SHA-256, as every row before keys existed. The algorithm is part of
the hashed payload, so it cannot be switched without breaking the row. Checking:

- an HMAC row without the key cannot be checked (**unverifiable**: never "intact");
- an HMAC row under another key id is a **key** problem (the key changed, or a forger
  used their own);
- a plain row after an HMAC row is a **downgrade**: someone re-chained without the key;
  so is a plain last row while a key is configured (a whole chain re-chained plain).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

GENESIS_HASH = "0" * 64
ALG_SHA256 = "sha256"
ALG_HMAC = "hmac-sha256"
ALGORITHMS = (ALG_SHA256, ALG_HMAC)


def canonical_json(payload: Mapping[str, Any]) -> str:
    """One spelling per object: sorted keys, no spaces, UTF-8 kept, no NaN."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=str)


def row_hash(prev_hash: str, payload: Mapping[str, Any], key: bytes | None = None) -> str:
    """sha256 (HMAC-SHA256 under ``key``) over the previous hash and the canonical
    payload, as lowercase hex."""
    message = prev_hash.encode("ascii") + b"\n" + canonical_json(payload).encode("utf-8")
    if key is not None:
        return hmac.new(key, message, hashlib.sha256).hexdigest()
    return hashlib.sha256(message).hexdigest()


def chain_of(payload: Mapping[str, Any]) -> tuple[str, str | None]:
    """The row's algorithm and key id from its payload (no ``chain``: plain SHA-256)."""
    chain = payload.get("chain")
    if not isinstance(chain, Mapping):
        return ALG_SHA256, None
    key = chain.get("key")
    return str(chain.get("alg", ALG_SHA256)), key if isinstance(key, str) else None


@dataclass(frozen=True, slots=True)
class ChainRow:
    seq: int
    prev_hash: str
    hash: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChainProblem:
    # edited | deleted | reordered | truncated | head | unverifiable | key | downgrade
    # | missing | anchor | replacement
    kind: str
    seq: int | None
    detail: str

    def __str__(self) -> str:
        where = f"row {self.seq}: " if self.seq is not None and \
            not self.detail.startswith("rows ") else ""
        return f"{self.kind}: {where}{self.detail}"


@dataclass(frozen=True, slots=True)
class ChainReport:
    rows: int
    last_hash: str
    problems: tuple[ChainProblem, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = field(default_factory=tuple)
    algorithms: tuple[str, ...] = field(default_factory=tuple)  # the rows', in order met
    anchor: str | None = None  # the anchor the rows matched (None: not checked)

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


def _content_problem(row: ChainRow, key: bytes | None, key_id: str | None,
                     keyed_before: int | None) -> ChainProblem | None:
    """Whether the row's stored hash is its content's, under the row's own algorithm."""
    alg, row_key = chain_of(row.payload)
    if alg == ALG_SHA256:
        if keyed_before is not None:
            return ChainProblem("downgrade", row.seq,
                                f"plain SHA-256 after HMAC row {keyed_before}: re-chained "
                                "by someone without the key")
        secret = None
    elif alg != ALG_HMAC:
        return ChainProblem("edited", row.seq, f"unknown chain algorithm {alg!r}")
    elif key is None:
        return ChainProblem("unverifiable", row.seq,
                            "HMAC-keyed and no key is configured ([audit] key_file): "
                            "its content cannot be checked")
    elif row_key != key_id:
        return ChainProblem("key", row.seq,
                            f"keyed with key {row_key}, not the configured key {key_id}")
    else:
        secret = key
    if row_hash(row.prev_hash, row.payload, secret) != row.hash:
        return ChainProblem("edited", row.seq, "its content does not match its stored hash")
    return None


def verify_chain(rows: Iterable[ChainRow], *, head_count: int | None,
                 head_hash: str | None, expect_head: str | None = None,
                 key: bytes | None = None, key_id: str | None = None,
                 keyed: bool = False) -> ChainReport:
    """Check every row and the head; return all problems found, each naming its row.

    ``key``/``key_id``: the configured HMAC key (None: HMAC rows are unverifiable).
    ``keyed``: a key is configured, so the last row must be an HMAC row (an HMAC row
    vouches for every row before it through ``prev_hash``; a plain last row means a
    re-chain without the key, or no append since the key was configured)."""
    ordered = sorted(rows, key=lambda r: r.seq)
    problems: list[ChainProblem] = []
    all_hashes = {row.hash: row.seq for row in ordered}
    prev_hash, prev_seq = GENESIS_HASH, 0
    keyed_before: int | None = None
    algorithms: list[str] = []
    for row in ordered:
        content = _content_problem(row, key, key_id, keyed_before)
        if content is not None:
            problems.append(content)
        alg = chain_of(row.payload)[0]
        if alg not in algorithms:
            algorithms.append(alg)
        if alg == ALG_HMAC and keyed_before is None:
            keyed_before = row.seq
        if row.seq != prev_seq + 1 and row.prev_hash not in all_hashes:
            missing = f"{prev_seq + 1}" if row.seq == prev_seq + 2 else \
                f"{prev_seq + 1}..{row.seq - 1}"
            problems.append(ChainProblem("deleted", row.seq,
                                         f"row(s) {missing} before it are missing"))
        elif row.prev_hash != prev_hash:
            problems.append(_link_problem(row, all_hashes))
        prev_hash, prev_seq = row.hash, row.seq
    if keyed and ordered and chain_of(ordered[-1].payload)[0] != ALG_HMAC:
        problems.append(ChainProblem(
            "downgrade", ordered[-1].seq,
            "a key is configured but the last row is plain SHA-256: re-chained without the "
            "key, or nothing was appended since the key was configured (`memras audit seal` "
            "appends a keyed row)"))
    problems = _one_line_per_run(problems, ("unverifiable", "key"))
    already_deleted = any(p.kind == "deleted" for p in problems)
    problems.extend(_head_problems(len(ordered), prev_hash, head_count, head_hash,
                                   expect_head, already_deleted))
    return ChainReport(rows=len(ordered), last_hash=prev_hash, problems=tuple(problems),
                       algorithms=tuple(algorithms))


def _one_line_per_run(problems: list[ChainProblem], kinds: tuple[str, ...]
                      ) -> list[ChainProblem]:
    """Adjacent rows with one same problem of ``kinds`` become one line ("rows 1..12")."""
    runs: list[list[ChainProblem]] = []
    for problem in problems:
        run = runs[-1] if runs else None
        if (run is not None and problem.kind in kinds and run[0].kind == problem.kind
                and run[0].detail == problem.detail):
            run.append(problem)
        else:
            runs.append([problem])
    return [run[0] if len(run) == 1 else
            ChainProblem(run[0].kind, run[0].seq,
                         f"rows {run[0].seq}..{run[-1].seq} ({len(run)}): {run[0].detail}")
            for run in runs]


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
