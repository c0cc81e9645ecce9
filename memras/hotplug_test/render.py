"""The report as files: ``report.json``, ``report.md`` and ``latency.svg``.

The SVG is written by hand (no plotting dependency): per block, a bar for the median
offline and online latency with a whisker to the maximum, and dashed lines for the
run-wide p90 and p99 of offline.
"""

from __future__ import annotations

import json
from html import escape as xml_escape
from pathlib import Path
from typing import Any

from memras.hotplug_test.model import CHECKS, Report

SVG_W, SVG_H, PAD_L, PAD_B, PAD_T = 720, 320, 60, 40, 30
COLOURS = {"offline": "#c0504d", "online": "#4f81bd"}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / (1 << 20):.1f} MiB"


def _ranges(blocks: list[int]) -> str:
    """[1, 2, 3, 7] -> 'memory1-3, memory7'."""
    out: list[str] = []
    last = -2
    for b in sorted(blocks):
        if out and b == last + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{b}"
        else:
            out.append(f"memory{b}")
        last = b
    return ", ".join(out)


def markdown(report: Report) -> str:
    data = report.as_dict()
    env, figs = data["environment"], data["figures"]
    lines = [f"# memras hotplug-test: {'PASS' if report.ok else 'FAIL'}", ""]
    if report.cancelled:
        lines += ["**Cancelled** before the end: the run counts as failed.", ""]
    lines += ["## Environment", "", "| | |", "|---|---|"]
    for key in ("hostname", "kernel", "root", "simulated", "block_size", "auto_online_blocks",
                "online_policy", "mem_total", "uevent_source", "notifier_inject",
                "soft_offline_page", "kpageflags", "cpus", "memras"):
        value = env.get(key)
        if key in ("block_size", "mem_total") and isinstance(value, int):
            value = f"{value} ({_size(value)})"
        lines.append(f"| {key} | {value} |")
    plan = data["plan"]
    blocks = plan.get("blocks", [])
    lines += ["", "## Plan", "",
              f"- blocks tested ({len(blocks)}): "
              + (", ".join(f"memory{b}" for b in blocks) or "none"),
              f"- cycles done: {data['cycles_done']} (asked: "
              f"{plan.get('duration_s') and str(plan['duration_s']) + ' s' or plan.get('cycles')})",
              f"- pressure: {_size(data['pressure'].get('bytes')) if data['pressure'] else 'none'}",
              f"- duration: {data['seconds']:.1f} s"]
    skipped = plan.get("skipped", [])
    if skipped:
        by_reason: dict[str, list[int]] = {}
        for s in skipped:
            by_reason.setdefault(s["reason"], []).append(s["block"])
        lines.append(f"- left alone ({len(skipped)} blocks):")
        lines += [f"  - {_ranges(blocks)}: {reason}" for reason, blocks in by_reason.items()]
    lines += ["", "## Checks", "", "| check | pass | fail | skip | what it proves |",
              "|---|---:|---:|---:|---|"]
    for name, t in data["summary"].items():
        lines.append(f"| {name} | {t['pass']} | {t['fail']} | {t['skip']} | "
                     f"{CHECKS.get(name, '')} |")
    if data["failures"]:
        lines += ["", "## Failures", ""]
        for f in data["failures"][:50]:
            where = " ".join(x for x in (f"memory{f['block']}" if f["block"] is not None else "",
                                         f"cycle {f['cycle']}" if f["cycle"] else "") if x)
            lines.append(f"- **{f['name']}** {where}: {f['detail']}")
    skips = [c for c in data["checks"] if c["outcome"] == "skip"]
    if skips:
        lines += ["", "## Not run", ""] + [f"- {c['name']}: {c['detail']}" for c in skips]
    lines += ["", "## Latency (ms)", "", "| operation | n | p50 | p90 | p99 | max |",
              "|---|---:|---:|---:|---:|---:|"]
    for kind in ("offline", "online", "eject", "readd"):
        s = figs[kind]
        if s["count"]:
            lines.append(f"| {kind} | {s['count']} | {_ms(s['p50'])} | {_ms(s['p90'])} | "
                         f"{_ms(s['p99'])} | {_ms(s['max'])} |")
    lines += ["", "| block | offline p50 | offline max | online p50 | online max |",
              "|---|---:|---:|---:|---:|"]
    for block, s in figs["per_block"].items():
        lines.append(f"| memory{block} | {_ms(s['offline']['p50'])} | {_ms(s['offline']['max'])}"
                     f" | {_ms(s['online']['p50'])} | {_ms(s['online']['max'])} |")
    mig = figs["migration"]
    lines += ["", "## Migration", ""]
    if mig["bytes_per_s"]:
        lines.append(f"{_size(mig['bytes'])} in use in {mig['offlines_measured']} offlined "
                     f"blocks moved in {mig['seconds']:.3f} s: "
                     f"**{mig['bytes_per_s'] / (1 << 20):.1f} MiB/s**")
    else:
        lines.append("not measured (needs /proc/kpageflags and root; never on a simulated "
                     "root) or nothing in use in the offlined blocks")
    return "\n".join(lines) + "\n"


def svg(report: Report) -> str:
    """Per-block median latency bars (offline, online) with max whiskers; p90/p99 lines."""
    per_block: dict[str, Any] = report.figures()["per_block"]
    blocks = list(per_block)
    plot_w, plot_h = SVG_W - PAD_L - 20, SVG_H - PAD_T - PAD_B
    top = max([s[k]["max"] or 0 for s in per_block.values() for k in ("offline", "online")]
              + [1e-6])
    off = report.figures()["offline"]

    def y(v: float) -> float:
        return PAD_T + plot_h - plot_h * min(v, top) / top

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_W}" height="{SVG_H}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{SVG_W}" height="{SVG_H}" fill="white"/>',
           f'<text x="{PAD_L}" y="18" font-size="13">memras hotplug-test: latency per block '
           f'(median bar, whisker to max), ms</text>',
           f'<line x1="{PAD_L}" y1="{PAD_T + plot_h}" x2="{PAD_L + plot_w}" '
           f'y2="{PAD_T + plot_h}" stroke="black"/>',
           f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{PAD_T + plot_h}" stroke="black"/>']
    for frac in (0, 0.5, 1):
        v = top * frac
        out.append(f'<text x="{PAD_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">'
                   f'{v * 1000:.0f}</text>')
    group = plot_w / max(1, len(blocks))
    bar = max(2.0, min(24.0, group / 3))
    for i, block in enumerate(blocks):
        x0 = PAD_L + i * group + group / 2 - bar
        for j, kind in enumerate(("offline", "online")):
            s = per_block[block][kind]
            if not s["count"]:
                continue
            x = x0 + j * bar
            out.append(f'<rect x="{x:.1f}" y="{y(s["p50"]):.1f}" width="{bar - 1:.1f}" '
                       f'height="{PAD_T + plot_h - y(s["p50"]):.1f}" fill="{COLOURS[kind]}"/>')
            cx = x + (bar - 1) / 2
            out.append(f'<line x1="{cx:.1f}" y1="{y(s["p50"]):.1f}" x2="{cx:.1f}" '
                       f'y2="{y(s["max"]):.1f}" stroke="black"/>')
        if len(blocks) <= 40 or i % max(1, len(blocks) // 20) == 0:
            out.append(f'<text x="{PAD_L + i * group + group / 2:.1f}" y="{SVG_H - PAD_B + 14}" '
                       f'text-anchor="middle">{xml_escape(block)}</text>')
    for label, value in (("offline p90", off["p90"]), ("offline p99", off["p99"])):
        if value:
            out.append(f'<line x1="{PAD_L}" y1="{y(value):.1f}" x2="{PAD_L + plot_w}" '
                       f'y2="{y(value):.1f}" stroke="#555" stroke-dasharray="4 3"/>')
            out.append(f'<text x="{PAD_L + plot_w}" y="{y(value) - 3:.1f}" text-anchor="end">'
                       f'{label} {value * 1000:.1f}</text>')
    out.append(f'<text x="{PAD_L + plot_w / 2}" y="{SVG_H - 6}" text-anchor="middle">memory '
               f'block (<tspan fill="{COLOURS["offline"]}">offline</tspan> / '
               f'<tspan fill="{COLOURS["online"]}">online</tspan>)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_reports(report: Report, directory: Path) -> dict[str, str]:
    """Write the three files; their paths by kind."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": directory / "report.json", "markdown": directory / "report.md",
             "svg": directory / "latency.svg"}
    paths["json"].write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    paths["markdown"].write_text(markdown(report))
    paths["svg"].write_text(svg(report))
    return {k: str(v) for k, v in paths.items()}
