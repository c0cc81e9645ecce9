"""Where the audit trail's head is kept outside the database, and the optional HMAC key.

Someone who can write the database can rewrite the whole chain and its head table, so
after every append memras also writes the new head (row count, last hash, time, chain
algorithm) to places the database does not control:

- **the anchor file**: ``[audit] anchor_file``; by default ``audit-head`` beside the
  default database (``/var/lib/memras/audit-head``) and ``<database>.audit-head`` beside
  any other database file (two databases in one directory never share an anchor).
  Created 0640, written atomically (temporary file, fsync, rename, fsync of the
  directory), one JSON object. Appenders take ``<anchor>.lock`` (flock) around the
  database commit and the anchor write, so the file never goes backwards.
- **syslog / the journal**: one ``MEMRAS_AUDIT_HEAD=<hash> count=N …`` line at
  LOG_AUTHPRIV|LOG_INFO (``[audit] syslog = false`` turns it off). journald keeps it
  whoever can write the database; ``journalctl -t memras-audit`` lists every head.
- **hooks**: callables in :data:`ANCHOR_HOOKS` (the fleet store registers one there);
  each receives the :class:`Head`; a failing hook is logged, never fatal.

``[audit] key_file`` names a secret (one line of at least 16 bytes, e.g. ``openssl rand
-hex 32``, in a file only its owner can read) that turns new rows into an HMAC-SHA256
chain: without the key nobody can recompute the chain, not even with write access to the
database and the anchor file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import syslog
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memras.config import read_config_file, read_secret_file
from memras.errors import UsageError

log = logging.getLogger("memras.audit")

DEFAULT_DB_NAME = "memras.db"
DEFAULT_ANCHOR_NAME = "audit-head"
ANCHOR_MODE = 0o640
MIN_KEY_BYTES = 16
SYSLOG_IDENT = "memras-audit"
SETTINGS_KEYS = ("anchor_file", "key_file", "syslog")


@dataclass(frozen=True, slots=True)
class Head:
    """The trail's head as anchored: what an append left behind."""

    count: int
    hash: str
    time: str
    alg: str
    database: str

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "head": self.hash, "time": self.time, "alg": self.alg,
                "database": self.database}

    def line(self) -> str:
        """The syslog line: ``key=value`` pairs, the database path JSON-quoted."""
        return (f"MEMRAS_AUDIT_HEAD={self.hash} count={self.count} alg={self.alg} "
                f"time={self.time} database={json.dumps(self.database)}")


ANCHOR_HOOKS: list[Callable[[Head], None]] = []
"""Called with the new head after every append (the fleet store's anchor goes here)."""


@dataclass(frozen=True, slots=True)
class ChainKey:
    """The HMAC key and the id rows record (a digest of the key, never the key)."""

    secret: bytes
    id: str

    @classmethod
    def from_bytes(cls, secret: bytes) -> ChainKey:
        return cls(secret, hashlib.sha256(b"memras-audit-key\n" + secret).hexdigest()[:16])


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """memras.toml's ``[audit]`` table."""

    anchor_file: Path | None = None  # None: the default beside the database
    key_file: Path | None = None
    syslog: bool = True

    @classmethod
    def from_section(cls, table: Mapping[str, Any], name: str = "memras.toml"
                     ) -> AuditSettings:
        for key in table:
            if key not in SETTINGS_KEYS:
                raise UsageError(f"{name}: [audit] unknown key {key!r} "
                                 f"(allowed: {', '.join(SETTINGS_KEYS)})")
        paths: dict[str, Path | None] = {}
        for key in ("anchor_file", "key_file"):
            value = table.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise UsageError(f"{name}: [audit] {key} must be a non-empty path string")
            paths[key] = Path(value) if value is not None else None
        syslog_on = table.get("syslog", True)
        if not isinstance(syslog_on, bool):
            raise UsageError(f"{name}: [audit] syslog must be true or false")
        return cls(anchor_file=paths["anchor_file"], key_file=paths["key_file"],
                   syslog=syslog_on)

    @classmethod
    def load(cls, config_path: str | Path | None = None) -> AuditSettings:
        """From ``--config`` (None: /etc/memras/memras.toml if it exists, else defaults)."""
        file = read_config_file(config_path)
        return cls.from_section(file.section("audit"), file.name)

    def anchor_path(self, database: Path | None) -> Path | None:
        """The anchor file for ``database`` (None: an in-memory or server database with
        no ``anchor_file`` configured has no default place)."""
        if self.anchor_file is not None:
            return self.anchor_file
        if database is None:
            return None
        if database.name == DEFAULT_DB_NAME:
            return database.parent / DEFAULT_ANCHOR_NAME
        return database.parent / f"{database.name}.audit-head"


def load_key(path: Path) -> ChainKey:
    """Read the HMAC key with memras's secret-file rules (a regular file, mode 600-like,
    owned by this user or root: :func:`memras.config.read_secret_file`), at least
    :data:`MIN_KEY_BYTES` long."""
    secret = read_secret_file(path, "[audit] key_file").encode()
    if len(secret) < MIN_KEY_BYTES:
        raise UsageError(f"[audit] key_file: {path} holds {len(secret)} bytes; at least "
                         f"{MIN_KEY_BYTES} are needed",
                         hint=f"openssl rand -hex 32 > {path}")
    return ChainKey.from_bytes(secret)


class AnchorUnreadable(Exception):  # noqa: N818 (a reason, not a failure of memras)
    """The anchor file exists but cannot be read or is not an anchor."""

    def __init__(self, reason: str, *, tampered: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tampered = tampered


def read_anchor(path: Path) -> Head | None:
    """The anchored head; None when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise AnchorUnreadable(f"cannot read the anchor file {path}: {reason}",
                               tampered=isinstance(exc, UnicodeDecodeError)) from None
    try:
        data = json.loads(text)
        head = Head(count=int(data["count"]), hash=str(data["head"]), time=str(data["time"]),
                    alg=str(data["alg"]), database=str(data["database"]))
    except (ValueError, KeyError, TypeError):
        raise AnchorUnreadable(f"the anchor file {path} is not a memras audit anchor",
                               tampered=True) from None
    if head.count < 0:
        raise AnchorUnreadable(f"the anchor file {path} records {head.count} rows",
                               tampered=True)
    return head


def write_anchor(path: Path, head: Head, *, group_of: Path | None = None) -> None:
    """Replace the anchor file atomically (0640, the group of ``group_of`` when it
    exists). Raises OSError."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, ANCHOR_MODE)
    try:
        os.fchmod(fd, ANCHOR_MODE)  # whatever the umask
        if group_of is not None:
            with contextlib.suppress(OSError):  # not ours to chown: keep our group
                os.fchown(fd, -1, os.stat(group_of).st_gid)
        os.write(fd, (json.dumps(head.as_dict(), sort_keys=True) + "\n").encode())
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def anchor_lock(path: Path | None, *, shared: bool = False) -> Iterator[None]:
    """Serialise appenders on ``<anchor>.lock``; ``shared``: a verifier, so that no
    append falls between its reading the rows and reading the anchor. No anchor, or no
    lock possible (a reader who may not open it): a no-op; the database still
    serialises the rows, only the anchor could then lag or lead by an append."""
    if path is None:
        yield
        return
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW) if shared else \
            os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, ANCHOR_MODE)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def to_syslog(head: Head) -> None:
    """The journal/syslog line (LOG_AUTHPRIV: readable by root, kept by journald)."""
    syslog.openlog(SYSLOG_IDENT, syslog.LOG_PID, syslog.LOG_AUTHPRIV)
    try:
        syslog.syslog(syslog.LOG_INFO, head.line())
    finally:
        syslog.closelog()


def publish(head: Head, *, anchor: Path | None, settings: AuditSettings,
            database: Path | None) -> list[str]:
    """Write ``head`` to every anchor; return what failed (each also logged as a warning)."""
    failures: list[str] = []
    if anchor is not None:
        try:
            write_anchor(anchor, head, group_of=database)
        except OSError as exc:
            failures.append(f"cannot write the audit anchor {anchor}: {exc.strerror} "
                            "(`memras audit verify` reports the rows it lacks; the next "
                            "append rewrites it)")
    if settings.syslog:
        try:
            to_syslog(head)
        except OSError as exc:  # pragma: no cover - syslog() swallows its own errors
            failures.append(f"cannot log the audit head to syslog: {exc.strerror}")
    for hook in list(ANCHOR_HOOKS):
        try:
            hook(head)
        except Exception as exc:  # noqa: BLE001 - a hook must never undo an audited step
            failures.append(f"audit anchor hook {getattr(hook, '__name__', hook)!s} "
                            f"failed: {type(exc).__name__}: {exc}")
    for failure in failures:
        log.warning("memras: %s", failure)
    return failures
