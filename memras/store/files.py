"""Who may read the memras database: the file and its -wal/-shm/-journal, 0640.

The database holds every error, verdict, alert and the audit trail, and alert delivery
errors that name the hooks' endpoints; it is not for every user on the host. A new
database is created here, before SQLite opens it, as ``0640`` whatever the umask (SQLite
would create it ``0644 & ~umask``: world-readable under the default umask 022 and under
umask 000), owned by this user and by the group ``memras`` when that group exists (else
this process's group), so an operator account in ``memras`` can read it and nobody
else can.

SQLite gives the side files it creates (``-wal``, ``-shm``, a rollback ``-journal``) the
main file's mode, and, when it runs as root, its owner (``findCreateFileMode`` in
sqlite3.c's unix VFS), so they follow the database by themselves; the store calls
:func:`secure_database_files` again after its first write to hold that to the same rule
here (mode and group of the database, never wider), whatever SQLite version runs.

An existing database keeps its mode: a ``chmod 644`` an administrator chose (to let
everyone read it) is not undone on the next start. A database from before this rule is
``0644``; ``chmod 640`` it once.
"""

from __future__ import annotations

import contextlib
import grp
import os
import stat
from pathlib import Path

DATABASE_MODE = 0o640
DATABASE_GROUP = "memras"
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")


def database_group() -> int:
    """The gid of the group ``memras`` when it exists, else this process's group."""
    try:
        return grp.getgrnam(DATABASE_GROUP).gr_gid
    except KeyError:
        return os.getegid()


def secure_database_files(path: str | Path) -> None:
    """Create ``path`` (empty, mode 0640, group :func:`database_group`) when it does not
    exist; give each existing side file the database's mode and group.

    Failures to change a group (a user not in ``memras``) or a file another user owns
    leave that file as it is: the open goes on, and SQLite reports any real problem.
    """
    path = Path(path)
    _create_private(path)
    try:
        main = path.stat()
    except OSError:
        return
    for suffix in SIDE_SUFFIXES:
        _match(Path(f"{path}{suffix}"), stat.S_IMODE(main.st_mode) & 0o666, main.st_gid)


def _create_private(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     DATABASE_MODE)
    except FileExistsError:
        return
    except OSError:
        return  # a directory we cannot write: the open that follows says so
    try:
        os.fchmod(fd, DATABASE_MODE)  # the umask narrowed or left the create mode; set it
        gid = database_group()
        if os.fstat(fd).st_gid != gid:
            with contextlib.suppress(OSError):
                os.fchown(fd, -1, gid)
    finally:
        os.close(fd)


def _match(side: Path, mode: int, gid: int) -> None:
    try:
        info = side.lstat()
    except OSError:
        return
    if not stat.S_ISREG(info.st_mode):
        return
    with contextlib.suppress(OSError):
        if stat.S_IMODE(info.st_mode) != mode:
            os.chmod(side, mode)
        if info.st_gid != gid:
            os.chown(side, -1, gid)
