"""What the wizard shows, as Rich ``Text`` built from the engine's snapshot.

Pure functions (no I/O) so the look is testable. Every string that came from the
kernel or firmware (labels, locators, serials, errors) goes through ``safe`` and is
never parsed as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memras.tui.widgets.format import safe
from rich.text import Text

from memras.topology.naming import wide_text
from memras.workflow.driver import Override
from memras.workflow.preflight import SKIPPED
from memras.workflow.states import HAPPY_PATH, State

STEP_TITLES = {
    "preflight": "Preflight checks",
    "soft_offline_pages": "Isolate known bad pages",
    "offline_blocks": "Take the blocks offline",
    "remove_module": "Remove the module",
    "insert_module": "Insert the new module",
    "online_blocks": "Online the new blocks",
    "verify": "Verify",
    "close": "Done",
}
STEP_REACHES = {step.name: step.target for step in HAPPY_PATH}
STATE_ORDER = [State.NEW, *[step.target for step in HAPPY_PATH]]
BLOCK_CHARS = {"online": ("█", "green3"), "offline": ("░", "red3"),
               "offlining": ("▒", "yellow3"), "onlining": ("▒", "yellow3"),
               "gone": ("·", "grey50"), "failed": ("✗", "bold red")}


def steps_text(state: State, running: str | None, failed: str | None) -> Text:
    """The happy path with a mark per step: ✓ done, ▶ running, ✗ failed, · to come."""
    reached = STATE_ORDER.index(state) if state in STATE_ORDER else -1
    out = Text()
    for number, step in enumerate(HAPPY_PATH, start=1):
        done = STATE_ORDER.index(step.target) <= reached
        if step.name == failed:
            mark, style = "✗", "bold red"
        elif step.name == running:
            mark, style = "▶", "bold yellow"
        elif done:
            mark, style = "✓", "green"
        else:
            mark, style = "·", "dim"
        out.append(f" {mark} {number}. {STEP_TITLES[step.name]}\n", style=style)
    return out


def module_name(target: dict[str, Any], name: str) -> str:
    """How the wizard names the module it replaces: a CXL memdev as the rest of memras
    does, by its name (``mem0``: the dashboard's row, what `memras replace` takes) with
    its serial and PCI function beside it (memras.topology.naming.wide_text:
    ``mem0 (serial 0x2a, 0000:0d:00.0)``); anything else by ``name``, the slot label
    the confirmation asks for."""
    cx = target.get("cxl") or {}
    if not cx.get("memdev"):
        return name
    serial = str(target.get("serial") or "")
    return wide_text(str(cx["memdev"]), [f"serial {serial}" if serial else "",
                                         str(target.get("locator") or "")])


def target_text(target: dict[str, Any], name: str | None = None) -> Text:
    """The module: ``name`` (the slot label, memras.topology.naming) first, then its
    serial, then the EDAC label and id where they differ from it. A CXL memdev: its
    name with serial and PCI function (:func:`module_name`), then its PCIe slot."""
    name = name or target.get("locator") or target.get("label") or target.get("dimm_id") or "?"
    out = Text()
    out.append("Module  ", style="bold")
    if target.get("cxl"):
        out.append_text(safe(module_name(target, name), "bold"))
        out.append("\n        CXL memdev, PCIe slot ")
        out.append_text(safe(target["cxl"].get("slot") or "none listed"))
    else:
        _dimm_names(out, target, name)
    blocks = target.get("blocks") or []
    if blocks:
        out.append(f"\n        {len(blocks)} memory blocks: memory{blocks[0]}–memory{blocks[-1]}")
    return out


def _dimm_names(out: Text, target: dict[str, Any], name: str) -> None:
    out.append_text(safe(name, "bold"))
    out.append("   serial ")
    out.append_text(safe(target.get("serial") or "-"))
    for prefix, key in (("", "label"), ("id ", "dimm_id")):  # one a line: fits at 80x24
        value = str(target.get(key) or "")
        if value and value != name:
            out.append(f"\n        {prefix}")
            out.append_text(safe(value))


def checks_text(checks: Sequence[dict[str, Any]] | None) -> Text:
    out = Text()
    for check in checks or []:
        out.append(" PASS " if check["ok"] else " FAIL ",
                   style="bold green" if check["ok"] else "bold white on red")
        out.append(" ")
        out.append_text(safe(check["name"], "bold"))
        out.append(": ")
        out.append_text(safe(check["detail"]))
        out.append("\n")
    return out


def overrides_text(offered: Sequence[Override]) -> Text:
    """The keys that run preflight again with an override (memras.workflow.driver
    .overrides_for), one a line with the CLI flag and what it does; empty when none."""
    if not offered:
        return Text()
    out = Text("preflight again with an override (its key says the risk first):\n",
               style="bold")
    for o in offered:
        out.append(f" {o.key} ", style="bold reverse")
        out.append(f" {o.flag}: {o.does}\n")
    return out


def swap_text(target: dict[str, Any], backend: str, name: str | None = None) -> Text:
    """The physical-swap instructions: what to pull, where, and how to know it is right;
    ``name`` the slot label as the confirmation asked it (memras.topology.naming)."""
    out = Text()
    out.append(" ⚠  PHYSICAL SWAP: the old module's memory is offline \n",
               style="bold black on yellow")
    out.append("\nPull exactly this module:\n", style="bold")
    acpi = f"{target.get('acpi_device') or '-'} (slot {target.get('slot') or '?'})"
    rows = [("Slot label", name or target.get("locator") or target.get("label")),
            ("DIMM label", target.get("label")),
            ("SMBIOS locator", target.get("locator")),
            ("Serial (sticker)", target.get("serial")),
            ("Part number", target.get("part")),
            ("ACPI device", acpi)]
    for name, value in rows:
        out.append(f"  {name:<17}", style="bold")
        out.append_text(safe(value or "-", "bold cyan"))
        out.append("\n")
    out.append("\n1. Check the serial on the module's sticker matches before pulling.\n"
               "2. Pull ONLY this module; every other module is still in use.\n"
               "3. Insert the new module (same size and part) in the same slot.\n")
    if backend == "simulated":
        out.append("\nSimulated server: press ", style="italic")
        out.append("t", style="bold reverse")
        out.append(" to let the simulated technician eject and insert the module.",
                   style="italic")
    else:
        out.append("\nPress ", style="italic")
        out.append("enter", style="bold reverse")
        out.append(f" to eject through the {backend} backend; memras then waits for the "
                   "new module.", style="italic")
    return out


def blocks_strip(statuses: Sequence[str]) -> Text:
    """One cell per memory block of the module, by status (per-block progress)."""
    out = Text()
    for status in statuses:
        char, style = BLOCK_CHARS.get(status, ("?", "magenta"))
        out.append(char, style=style)
    return out


def block_statuses(snapshot: dict[str, Any], role: str = "old") -> list[str]:
    return [("failed" if b.get("error") and b["status"] != "offline" else b["status"])
            for b in snapshot["blocks"][role]]


def eta_text(eta_s: float | None) -> str:
    if eta_s is None:
        return "ETA --:--"
    minutes, seconds = divmod(int(round(eta_s)), 60)
    return f"ETA {minutes:02d}:{seconds:02d}"


def _runs(blocks: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive block numbers as (first, last) runs."""
    runs: list[tuple[int, int]] = []
    for b in sorted(blocks):
        if runs and b == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], b)
        else:
            runs.append((b, b))
    return runs


def next_commands(snapshot: dict[str, Any], name: str | None = None) -> list[str]:
    """What to run after a replacement that did not replace: the blocks it left offline
    back online (``--on-failure leave``), or the same replacement again once the cause is
    fixed (rolled back, refused). ``name``: the slot label the wizard asked for."""
    state = snapshot["state"]
    target = (snapshot.get("target") or {}).get("target") or {}
    who = name or target.get("locator") or target.get("label") or target.get("dimm_id") or "?"
    if target.get("cxl"):  # a memdev is asked for by its PCI function, replaced by its name
        who = target["cxl"].get("memdev") or target.get("label") or who
    if state == "left-offline":
        offline = [b["block"] for b in snapshot["blocks"]["old"] if b["status"] == "offline"]
        return [f"memras capacity online --blocks {a}{f'-{b}' if b != a else ''} --zone Movable"
                for a, b in _runs(offline)]
    if state in ("rolled-back", "refused"):
        return [f"memras replace {who}"]
    return []


def summary_text(snapshot: dict[str, Any], name: str | None = None,
                 offered: Sequence[Override] = ()) -> Text:
    """The end of a replacement: the outcome, where the memory is, why, and what to run
    next (:func:`next_commands`); ``name`` the slot label the wizard asked for. A refusal
    lists every check that refused, then the keys of the overrides ``offered`` (first:
    at 80x24 the rest is below the fold)."""
    state = snapshot["state"]
    style = "bold white on green" if state == "closed" else "bold black on yellow"
    words = {"closed": "REPLACED", "rolled-back": "ROLLED BACK: nothing was replaced",
             "refused": "REFUSED: nothing was changed", "aborted": "ABORTED",
             "left-offline": "STOPPED: blocks left offline"}.get(state, state.upper())
    out = Text(f" {words} ", style=style)
    out.append("\n\n")
    out.append_text(safe(snapshot.get("where") or ""))
    failed = [c for c in snapshot.get("checks") or [] if not c["ok"] and c["detail"] != SKIPPED]
    if state == "refused" and failed:  # every check that refused, not the first alone
        out.append("\npreflight refused:\n", style="bold")
        out.append_text(checks_text(failed))
        out.append_text(overrides_text(offered))
        out.rstrip()
    elif snapshot.get("error") and state != "closed":
        out.append("\nreason: ", style="bold")
        out.append_text(safe(snapshot["error"]))
    new = snapshot["blocks"]["new"]
    if new:
        out.append(f"\nnew module detected: {len(new)} blocks memory{new[0]['block']}–"
                   f"memory{new[-1]['block']}  ")
        out.append_text(blocks_strip([b["status"] for b in new]))
    result = snapshot.get("result") or {}
    if result.get("checks"):
        out.append("\n")
        out.append_text(checks_text(result["checks"]))
    commands = next_commands(snapshot, name)
    if commands:
        out.append("\nto bring them back online: " if state == "left-offline"
                   else "\nonce the cause is fixed, try again (or r on the DIMM): ", style="bold")
        for i, command in enumerate(commands):
            out.append(", " if i else "")
            out.append_text(safe(command, "bold cyan"))
    out.append(f"\nreplacement #{snapshot['id']} is in the audit trail (u: audit screen)")
    return out


def interrupted_text(snapshot: dict[str, Any], name: str | None = None) -> Text:
    """``name``: the module's slot label (memras.topology.naming), else the stored label."""
    out = Text(" INTERRUPTED REPLACEMENT ", style="bold black on yellow")
    out.append(f"\n\nReplacement #{snapshot['id']} of ")
    out.append_text(safe(name or snapshot.get("dimm") or "?", "bold"))
    out.append(f" stopped at '{snapshot['state']}'")
    if snapshot.get("current_step"):
        out.append(f" during '{snapshot['current_step']}'")
    out.append(".\n")
    out.append_text(safe(snapshot.get("where") or ""))
    out.append("\n\nPress ")
    out.append("enter", style="bold reverse")
    out.append(" to resume it, or ")
    out.append("a", style="bold reverse")
    out.append(" to abort it (blocks go back online where the module is still present).")
    return out
