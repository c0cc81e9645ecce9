"""The one check of memras.toml that ``config check``, ``watch`` and ``doctor`` run.

First the schema (:data:`memras.config.SCHEMA`: tables, keys, types, ranges, required
hook options, cross-field rules; every problem at once, read with the file), then each
area turns its table into its typed settings exactly as the watcher does: the health
tables, ``[alerts]`` with each hook's secret files, ``[capacity]``, ``[store]`` and
``[audit]`` with its key file. An area whose table already has a schema problem is not
loaded again (one line per mistake). So ``config check`` passing means ``watch`` starts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memras.alerts.config import AlertsConfig
from memras.alerts.hooks import resolve_secret_files
from memras.audit.anchor import AuditSettings, load_key
from memras.capacity.policy import load_policy_config
from memras.config import ConfigProblems, read_config_file
from memras.errors import MemrasError
from memras.health.config import Config, load_config
from memras.store.retention import keep_from_config


def checked_config(path: str | Path | None) -> Config:
    """The health config of ``path`` once every table of it is valid.

    Raises:
        ConfigProblems: every problem, one line each (the schema's, then each area's).
    """
    file = read_config_file(path)  # the schema: raises ConfigProblems with all of them
    where = str(file.path or "memras.toml")
    problems: list[str] = []
    config = Config()

    def area(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except MemrasError as exc:
            msg = exc.msg if exc.msg.startswith((file.name, where)) else f"{where}: {exc.msg}"
            problems.append(msg + (f" ({exc.hint})" if exc.hint else ""))
            return None

    config = area(lambda: load_config(path)) or config
    alerts = area(lambda: AlertsConfig.from_dict(file.section("alerts")))
    for hook in alerts.hooks if alerts else ():
        area(functools.partial(resolve_secret_files, hook.options, hook.name))
    if file.section("capacity"):
        area(lambda: load_policy_config(file.section("capacity")))
    area(lambda: keep_from_config(file.section("store")))
    audit = area(lambda: AuditSettings.from_section(file.section("audit"), where))
    if audit is not None and audit.key_file is not None:
        area(lambda: load_key(audit.key_file))  # its permissions, as every audited step
    if problems:
        raise ConfigProblems(problems, hint=None)  # each area's line has its own hint
    return config

