"""The alert-hook protocol, the ``memras.alerts`` entry points, and a fake that ships.

A hook is a class registered in the entry-point group ``memras.alerts``; memras's own
hooks (exec, webhook, syslog, email, prometheus) are registered exactly the way a
third-party package registers one. :func:`available_hooks` lists the names without
importing any plugin; :func:`load_hooks` imports only the configured ones, and a
hook that fails to import or to configure is reported on stderr while the others
still run.
"""

from __future__ import annotations

import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, ClassVar, TextIO

from memras.alerts.alert import Alert
from memras.alerts.config import AlertsConfig, HookConfig
from memras.config import read_secret_file
from memras.errors import HookError, UsageError
from memras.text import escape, is_secret_name, redact

ENTRY_POINT_GROUP = "memras.alerts"


@dataclass(frozen=True, slots=True)
class DimmMetrics:
    """One DIMM's numbers for metric exporters."""

    dimm_id: str
    label: str | None
    corrected: int
    uncorrected: int
    verdict: str | None
    slot: str | None = None  # the slot label (P1-DIMMB1), memras.alerts.naming
    # node_exporter's EDAC labels and the module (memras.alerts.metrics): '' when unknown
    controller: str = ""
    csrow: str = ""
    channel: str = ""
    serial: str = ""
    part: str = ""
    last_event: float | None = None  # the newest error's time, Unix seconds


@dataclass(frozen=True, slots=True)
class HookMetrics:
    """One hook's delivery attempts as the store records them (every run)."""

    hook: str
    delivered: int = 0
    failed: int = 0  # failed attempts, retries and metric publishes included
    rate_limited: int = 0


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """What metric hooks publish: per-DIMM counts and verdicts, open alerts, and how
    each hook's deliveries went."""

    dimms: tuple[DimmMetrics, ...] = ()
    alerts_open: int = 0
    hooks: tuple[HookMetrics, ...] = ()
    up: bool = True  # False: the database could not be read (the DIMMs are the last read)


class AlertHook(ABC):
    """One way of telling the outside world about an alert.

    Subclasses set ``name`` and implement :meth:`send`. Optional abilities are class
    flags the dispatcher checks:

    - ``sends_resolved``: also call :meth:`send` when an alert is acked or resolved
      (the alert's ``state`` says which);
    - ``publishes_metrics``: call :meth:`publish` with a :class:`MetricsSnapshot`
      after every change, so the hook can export current state.
    """

    name: ClassVar[str] = "hook"
    sends_resolved: ClassVar[bool] = False
    publishes_metrics: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        """Configure the hook.

        Args:
            options: the hook's ``[alerts.hooks.NAME]`` table (without ``enabled``
                and ``rate_limit``, which the dispatcher handles).

        Any secret option can be given as a file instead (``secret_file``,
        ``password_file``, ``headers = { Authorization_file = … }``): see
        :func:`resolve_secret_files`; ``self.options`` holds the secret itself.

        Raises:
            HookError: an option is missing or invalid; the message names it.
        """
        self.options: Mapping[str, Any] = resolve_secret_files(options or {}, self.name)

    def secret_values(self) -> list[str]:
        """The secrets among this hook's options, for redacting its error texts."""
        return secret_values(self.options)

    @abstractmethod
    def send(self, alert: Alert) -> None:
        """Deliver one alert, once; the dispatcher does retries and rate limits.

        Args:
            alert: the alert, with ``id`` set when it has been stored.

        Returns:
            None when the receiver has accepted the alert.

        Raises:
            HookError: delivery failed; the message says why (it is recorded as the
                attempt's error and the attempt is retried with backoff).
        """

    def publish(self, snapshot: MetricsSnapshot) -> None:  # noqa: B027 - optional ability
        """Export current state (only called when ``publishes_metrics`` is set).

        Args:
            snapshot: counts and verdicts per DIMM and the number of open alerts.

        Raises:
            HookError: the state could not be written.
        """

    def close(self) -> None:  # noqa: B027 - optional
        """Release sockets, servers or files; called once when memras shuts down."""

    def option(self, key: str, default: Any = None, *, required: bool = False) -> Any:
        """An option's value; a missing required one raises HookError naming it."""
        if key in self.options:
            return self.options[key]
        if required:
            raise HookError(f"alert hook {self.name}: option {key!r} is required",
                            hint=f"set it under [alerts.hooks.{self.name}]")
        return default


class RecordingHook(AlertHook):
    """A fake hook that keeps what it was sent; fails the first ``fail_times`` sends."""

    name = "recording"
    sends_resolved = True
    publishes_metrics = True

    def __init__(self, options: Mapping[str, Any] | None = None, *, fail_times: int = 0) -> None:
        super().__init__(options)
        self.sent: list[Alert] = []
        self.snapshots: list[MetricsSnapshot] = []
        self.attempts = 0
        self.fail_times = int(self.option("fail_times", fail_times))
        self._lock = threading.Lock()

    def send(self, alert: Alert) -> None:
        with self._lock:
            self.attempts += 1
            if self.attempts <= self.fail_times:
                raise HookError(f"recording hook: planned failure {self.attempts}")
            self.sent.append(alert)

    def publish(self, snapshot: MetricsSnapshot) -> None:
        self.snapshots.append(snapshot)


def resolve_secret_files(options: Mapping[str, Any], hook: str) -> dict[str, Any]:
    """``options`` with each secret given as a file read in: ``NAME_file = "/path"``
    becomes ``NAME = <the file's text>`` when NAME names a secret
    (:func:`memras.text.is_secret_name`: ``secret``, ``password``, ``token``,
    ``Authorization`` …), in the hook's table and in its sub-tables (``headers``).
    Other ``*_file`` options (``ca_file``) are paths and stay as they are. The file
    must be private (:func:`memras.config.read_secret_file`); giving both NAME and
    NAME_file is an error. Raises HookError with one line naming the option."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, Mapping):
            out[key] = resolve_secret_files(value, f"{hook}.{key}")
            continue
        name = str(key).removesuffix("_file")
        if name == key or not is_secret_name(name):
            out[key] = value
            continue
        where = f"[alerts.hooks.{hook}] {key}"
        if name in options:
            raise HookError(f"{where}: give {name} or {key}, not both")
        if not isinstance(value, str) or not value:
            raise HookError(f"{where} must be a file path")
        try:
            out[name] = read_secret_file(value, where)
        except UsageError as exc:
            raise HookError(exc.msg, hint=exc.hint) from None
    return out


def secret_values(options: Mapping[str, Any]) -> list[str]:
    """The values of secret-named options, sub-tables included."""
    found: list[str] = []
    for key, value in options.items():
        if isinstance(value, Mapping):
            found += secret_values(value)
        elif is_secret_name(str(key)) and isinstance(value, str | int) \
                and not isinstance(value, bool):
            found.append(str(value))
    return found


def available_hooks() -> dict[str, EntryPoint]:
    """Hook names → entry points, without importing any plugin module."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


@dataclass
class LoadReport:
    """The hooks that loaded and, per name, why the others did not."""

    hooks: list[tuple[HookConfig, AlertHook]] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def load_hooks(config: AlertsConfig, *, only: Iterable[str] | None = None,
               registry: Mapping[str, EntryPoint] | None = None,
               warn: TextIO | None = None) -> LoadReport:
    """Import and configure the hooks ``config`` enables (or just ``only``).

    A hook that is unknown, fails to import, or rejects its options is written to
    ``warn`` (stderr by default) and recorded in ``failures``; the rest load.
    """
    registry = available_hooks() if registry is None else registry
    wanted = set(only) if only is not None else None
    report = LoadReport()
    for hook_config in config.hooks:
        if wanted is not None and hook_config.name not in wanted:
            continue
        try:
            hook = _instantiate(hook_config, registry)
        except (Exception, SystemExit) as exc:  # a broken plugin must not stop the others
            reason = redact(_reason(exc), secret_values(hook_config.options))
            report.failures[hook_config.name] = reason
            print(f"memras: alert hook {escape(hook_config.name)!r} not loaded: "
                  f"{escape(reason)}; the other hooks still run", file=warn or sys.stderr)
            continue
        report.hooks.append((hook_config, hook))
    return report


def _instantiate(hook_config: HookConfig, registry: Mapping[str, EntryPoint]) -> AlertHook:
    entry = registry.get(hook_config.name)
    if entry is None:
        known = ", ".join(sorted(registry)) or "none"
        raise HookError(f"no alert hook named {hook_config.name!r} (installed: {known})")
    factory: Callable[..., Any] = entry.load()
    hook = factory(hook_config.options)
    if not isinstance(hook, AlertHook):
        raise HookError(f"{entry.value} is not an AlertHook")
    return hook


def _reason(exc: BaseException) -> str:
    if isinstance(exc, HookError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
