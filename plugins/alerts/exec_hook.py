"""The ``exec`` hook: run a program per alert, with rasdaemon/mcelog trigger variables.

Options (``[alerts.hooks.exec]``)::

    command = ["/etc/ras/triggers/mc_event_trigger", "--from-memras"]  # argv, no shell
    timeout = "30s"          # killed (whole process group) on expiry: a failed attempt
    message_style = "rasdaemon"   # MESSAGE as rasdaemon (err_msg) or "mcelog" (msg: THRESHOLD)
    workdir = "/etc/ras/triggers" # optional working directory

The program gets only the variables below (plus PATH), as both daemons do, so an
existing trigger script keeps working. Values come from firmware and the kernel (a DIMM
label may hold NUL or ESC): each value is passed through :func:`memras.text.escape`
(control characters as ``\\xNN``, a backslash doubled), never raw, so no label can
stop the hook (the kernel refuses a NUL in the environment) or repaint the terminal a
trigger's output is read on. An argument of ``command`` with a control character is
passed escaped the same way. rasdaemon's (ras-mc-handler.c, run_ce/ue
trigger) come from ``evidence["last_event"]``: TIMESTAMP ("%Y-%m-%d %H:%M:%S %z"),
COUNT, TYPE, MESSAGE, LABEL, MC_INDEX, TOP_LAYER, MIDDLE_LAYER, LOWER_LAYER (-1 when
unused), ADDRESS and SYNDROME (``%llx``, no 0x), GRAIN (log2 bytes), DRIVER_DETAIL.
mcelog's (memdb.c; each absent when unknown): THRESHOLD ("12 in 24h": errors seen in
the rule's window, from ``evidence["threshold"]``), TOTALCOUNT,
LOCATION, DMI_LOCATION, DMI_NAME, DIMM, CHANNEL, SOCKETID, CECOUNT, UCCOUNT,
LASTEVENT (epoch seconds), AGETIME (seconds), THRESHOLD_COUNT. memras adds
MEMRAS_ALERT_ID, MEMRAS_KIND, MEMRAS_VERDICT, MEMRAS_SEVERITY, MEMRAS_DIMM,
MEMRAS_DIMM_SLOT (the slot label, e.g. P1-DIMMB1; empty when unknown), MEMRAS_MESSAGE
and MEMRAS_ALERT_JSON (a file holding the alert's v1 JSON payload, deleted after the
program exits).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from memras.alerts.alert import Alert
from memras.alerts.config import parse_duration
from memras.alerts.hooks import AlertHook
from memras.errors import HookError
from memras.text import escape, has_control

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RASDAEMON_TIME_FORMAT = "%Y-%m-%d %H:%M:%S %z"
_HEALTH_THRESHOLD = re.compile(r"^\s*(\d+)\s*/\s*(\d+\s*[smhd]?)\s*$")


class ExecHook(AlertHook):
    name = "exec"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        command = self.option("command", required=True)
        if isinstance(command, str):
            command = [command]
        if not command or not all(isinstance(a, str) for a in command):
            raise HookError("alert hook exec: command must be a list of strings (argv)")
        # argv cannot hold a NUL (execve): an argument with any control character goes
        # escaped, as the environment does, instead of failing every delivery
        self.argv: list[str] = [escape(a) if has_control(a) else a for a in command]
        self.timeout_s = parse_duration(self.option("timeout", DEFAULT_TIMEOUT_S),
                                        what="hooks.exec.timeout")
        self.message_style = str(self.option("message_style", "rasdaemon"))
        if self.message_style not in ("rasdaemon", "mcelog"):
            raise HookError("alert hook exec: message_style must be rasdaemon or mcelog")
        self.workdir = self.option("workdir")

    def send(self, alert: Alert) -> None:
        with tempfile.NamedTemporaryFile("w", prefix="memras-alert-", suffix=".json",
                                         delete=False) as handle:
            json.dump(alert.to_payload(), handle)
        try:
            env = trigger_environment(alert, json_path=handle.name,
                                      message_style=self.message_style)
            self._run(env)
        finally:
            os.unlink(handle.name)

    def _run(self, env: dict[str, str]) -> None:
        try:
            proc = subprocess.Popen(self.argv, env=env, cwd=self.workdir,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise HookError(f"exec hook: cannot run {self.argv[0]}: {exc.strerror}") from exc
        except ValueError as exc:  # e.g. a NUL in workdir: a failed attempt, with its reason
            raise HookError(f"exec hook: cannot run {self.argv[0]}: {exc}") from exc
        try:
            _, stderr = proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired as exc:
            _kill_group(proc)
            raise HookError(f"exec hook: {self.argv[0]} killed after "
                            f"{self.timeout_s:g}s timeout") from exc
        if proc.returncode != 0:
            tail = stderr.decode(errors="replace").strip()[-200:]
            raise HookError(f"exec hook: {self.argv[0]} exited {proc.returncode}"
                            + (f": {tail}" if tail else ""))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the trigger and anything it started, then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def trigger_environment(alert: Alert, *, json_path: str,
                        message_style: str = "rasdaemon") -> dict[str, str]:
    """The full environment for a trigger program (pure: no process is started)."""
    env = {"PATH": os.environ.get("PATH", DEFAULT_PATH)}
    env.update(rasdaemon_variables(alert))
    mcelog = mcelog_variables(alert)
    if message_style == "mcelog" and "MESSAGE" in mcelog:
        env["MESSAGE"] = mcelog["MESSAGE"]
    env.update({k: v for k, v in mcelog.items() if k != "MESSAGE"})
    env.update(memras_variables(alert, json_path))
    return {key: escape(value) for key, value in env.items()}


def rasdaemon_variables(alert: Alert) -> dict[str, str]:
    """rasdaemon's mc_event trigger variables from ``evidence["last_event"]``."""
    event = alert.evidence.get("last_event")
    if not isinstance(event, Mapping):
        return {"TIMESTAMP": _rasdaemon_time(alert.time), "MESSAGE": alert.message,
                "LABEL": alert.dimm_label or ""}
    when = _parse_time(event.get("timestamp")) or alert.time
    return {
        "TIMESTAMP": _rasdaemon_time(when),
        "COUNT": str(int(event.get("count") or 1)),
        "TYPE": str(event.get("error_type") or ""),
        "MESSAGE": str(event.get("message") or ""),
        "LABEL": str(event.get("label") or alert.dimm_label or ""),
        "MC_INDEX": _int_or_minus1(event.get("mc")),
        "TOP_LAYER": _int_or_minus1(event.get("top_layer")),
        "MIDDLE_LAYER": _int_or_minus1(event.get("middle_layer")),
        "LOWER_LAYER": _int_or_minus1(event.get("lower_layer")),
        "ADDRESS": _hex(event.get("address")),
        "GRAIN": str(int(event.get("grain_bits") or 0)),
        "SYNDROME": _hex(event.get("syndrome")),
        "DRIVER_DETAIL": str(event.get("driver_detail") or ""),
    }


def mcelog_variables(alert: Alert) -> dict[str, str]:
    """mcelog's DIMM trigger variables; a variable whose value is unknown is absent."""
    ev = alert.evidence
    last = ev.get("last_event")
    event: Mapping[str, Any] = last if isinstance(last, Mapping) else {}
    socket, channel, slot = event.get("socket"), event.get("channel"), event.get("slot")
    ce, ue = ev.get("ce_count"), ev.get("ue_count")
    threshold = threshold_evidence(ev)
    total = None if ce is None and ue is None else int(ce or 0) + int(ue or 0)
    out: dict[str, str | None] = {
        "THRESHOLD": _threshold_text(threshold),
        "TOTALCOUNT": _opt(total),
        "LOCATION": _location(socket, channel, slot, ev.get("bank_locator"), alert.dimm_label),
        "DMI_LOCATION": _opt(ev.get("bank_locator")),
        "DMI_NAME": _opt(alert.dimm_label),
        "DIMM": _opt(slot),
        "CHANNEL": _opt(channel),
        "SOCKETID": _opt(socket),
        "CECOUNT": _opt(ce),
        "UCCOUNT": _opt(ue),
        "LASTEVENT": _epoch(_parse_time(event.get("timestamp"))),
        "AGETIME": _opt(_int(threshold.get("window_s"))),
        "THRESHOLD_COUNT": _opt(threshold.get("observed")),
    }
    text = _threshold_text(threshold)
    out["MESSAGE"] = f"{alert.message}: {text}" if text else alert.message
    return {k: v for k, v in out.items() if v is not None}


def memras_variables(alert: Alert, json_path: str) -> dict[str, str]:
    return {
        "MEMRAS_ALERT_ID": "" if alert.id is None else str(alert.id),
        "MEMRAS_KIND": alert.kind.value,
        "MEMRAS_SEVERITY": alert.severity.value,
        "MEMRAS_VERDICT": alert.verdict or "",
        "MEMRAS_DIMM": alert.dimm_id or "",
        "MEMRAS_DIMM_SLOT": alert.dimm_name or "",  # the slot label (memras.alerts.naming)
        "MEMRAS_MESSAGE": alert.message,
        "MEMRAS_ALERT_JSON": json_path,
    }


def threshold_evidence(evidence: Mapping[str, Any]) -> dict[str, int]:
    """``count``/``window_s``/``observed`` of the tripped rule, from either shape.

    Accepts ``{"count": 10, "window_s": 86400, "observed": 12}`` or the health
    engine's ``{"threshold": "10 / 24h", "total_in_window": 12}``.
    """
    raw = evidence.get("threshold")
    if isinstance(raw, Mapping):
        out = {k: int(raw[k]) for k in ("count", "window_s", "observed") if raw.get(k) is not None}
    elif isinstance(raw, str) and (match := _HEALTH_THRESHOLD.match(raw)):
        out = {"count": int(match[1]), "window_s": int(parse_duration(match[2], what="threshold"))}
    else:
        out = {}
    if "observed" not in out and evidence.get("total_in_window") is not None:
        out["observed"] = int(evidence["total_in_window"])
    return out


def _threshold_text(threshold: Mapping[str, int]) -> str | None:
    """mcelog's ``"%u in %u%c"``: errors seen (count+excess) in the age window."""
    count = threshold.get("observed", threshold.get("count"))
    window = threshold.get("window_s")
    if count is None or window is None:
        return None
    for unit, size in (("h", 3600), ("m", 60)):
        if window and window % size == 0:
            return f"{count} in {window // size}{unit}"
    return f"{count} in {window}s"


def _location(socket: Any, channel: Any, slot: Any, bank_locator: Any,
              label: str | None) -> str | None:
    if socket is None and channel is None and slot is None and not label:
        return None
    text = f"SOCKET:{_q(socket)} CHANNEL:{_q(channel)} DIMM:{_q(slot)}"
    dmi = " ".join(str(p) for p in (bank_locator, label) if p)
    return f"{text} [{dmi}]" if dmi else text


def _q(value: Any) -> str:
    return "?" if value is None else str(value)


def _opt(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _int_or_minus1(value: Any) -> str:
    return "-1" if value is None else str(int(value))


def _hex(value: Any) -> str:
    """``%llx`` of the unsigned 64-bit value (rasdaemon prints u64)."""
    return "0" if value is None else f"{int(value) & 0xFFFF_FFFF_FFFF_FFFF:x}"


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _rasdaemon_time(when: datetime) -> str:
    local = when.astimezone() if when.tzinfo else when
    return local.strftime(RASDAEMON_TIME_FORMAT).rstrip()


def _epoch(when: datetime | None) -> str | None:
    return None if when is None else str(int(when.timestamp()))
