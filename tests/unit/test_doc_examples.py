"""Every ``memras …`` example in the user guide and docs/plugins.md runs, and shows what the
guide shows (issue 16: the guide had drifted from the program).

What is an example: a line in a fenced code block that starts with ``memras`` (or
``$ memras``, ``sudo memras``; ``A && B`` is two), ``\\``-continued or, for a synopsis,
continued by indented lines. A block whose first line is no command is an output block
and holds no example. After ``$ memras …`` come the lines the guide says it prints.

How it runs: in-process (``memras.cli.main``) against a copy of one simulated server that
``memras demo --keep DIR`` built (the module fixture: errors, verdicts, alerts and a
closed replacement), every command with that copy's ``--root`` and ``--db`` unless it
names its own. Placeholder words (DIR, DIMM, ID, …) and the example paths of a real
server (/var/lib/memras/memras.db, …) are substituted from the tables below. A synopsis
(``[--opt]``, ``a|b``) runs without its optional parts, and each option it shows must be
one the command accepts. The examples of one block run in order in the same copy, so
``sim create … DIR`` then ``--root DIR/root sim inject …`` work as the reader would type
them.

What is compared, the output's shape: the exit status (0 unless EXIT says why not); a
shown header line (``DIMM VERDICT …``) must be a header the command prints, word for
word; a shown ``label   value`` line must have a line starting with the same label
columns; a shown message must have a line with the same words up to its first value
(quote, number, path, parenthesis). Table rows are values and are not compared.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import memras.config
from memras.cli import build_parser, command_name, main

REPO = Path(__file__).parents[2]
DOCS = [REPO / "docs" / "user-guide.md", REPO / "docs" / "plugins.md"]
DATA = REPO / "tests" / "data"
TRACE_FIXTURE = REPO / "tests" / "fixtures" / "streams" / "demo-row-fault.trace"

# Examples not run, each with its reason (matched on the example's start). Keep it short:
# anything a simulated server can show runs.
SKIP: dict[str, str] = {
    "memras lab ": "boots a QEMU guest; tests/lab runs these scenarios",
    "memras vm ": "needs a QEMU monitor socket; tests/lab/test_vm*.py drive a real guest",
    "memras partition ": "needs two QEMU guests; tests/lab/test_partition.py",
    "memras demo --keep DIR": "the fixture builds the server with exactly this command",
    "memras demo --script": "the same story the fixture's `demo --keep` plays (15 s more)",
    "memras demo --json": "the same story the fixture's `demo --keep` plays (15 s more); "
                          "tests/unit/test_demo.py checks its JSON",
    "memras demo ": "on a terminal the TUI, without one the script (tests/tui, test_demo.py)",
    "memras hotplug-test --i-understand": "the real-server run (root, a shell `$(date)`); "
                                          "the --root SIM example above runs the same checks",
}
# A long-running command shown without --once runs with it (same options, one pass).
ONCE = {"watch"}
# Options added to an example, with the reason.
EXTRA: dict[str, tuple[list[str], str]] = {
    "memras hotplug-test --root SIM": (["--pressure-max", "32M", "--cycles", "1"],
                                       "the pressure workload is this machine's memory: "
                                       "30 % of the simulated server's free memory is GBs"),
}
# Examples whose documented exit status is not 0.
EXIT: dict[str, tuple[int, str]] = {
    "memras errors --dimm P1-DIMMC2": (2, "a DIMM name that fits no module is bad input"),
    "memras replace P1-DIMMD1": (3, "without --yes and without a terminal the "
                                    "confirmation cannot be asked: refused"),
    "memras acquit P1-DIMMD1": (2, "`repaired` just before closed what it would close"),
    "memras alerts test": (2, "the demo server's config has no hook to test"),
    "memras prune --dry-run": (2, "the demo server's config sets no [store] keep"),
    "memras capacity offline 256M": (3, "no terminal and no --yes: refused, nothing changed"),
    "memras capacity offline 0x": (3, "no terminal and no --yes: refused, nothing changed"),
    "memras capacity online 1g": (3, "the demo's offline memory is none: nothing to online"),
    "memras led ": (2, "the demo server's config has no [bmc]; tests/unit/test_bmc_ipmi.py "
                       "and test_bmc_redfish.py light real (simulated) BMCs"),
}
# Placeholder words of the guide -> what the test types (DIR/G/SIM: see _substitute).
WORDS = {"DIMM": "P1-DIMMD1", "ID": "1", "N": "5", "TEXT": "docs example", "SIZE": "128M",
         "S": "30s"}
# Paths of a real server in the examples -> the simulated one's (W: the block's copy).
PATHS = {
    "/sys/kernel/tracing/trace": str(TRACE_FIXTURE),
    "/var/lib/rasdaemon/ras-mc_event.db": "{W}/rasdaemon.db",  # memras's DB is one too
    "/var/lib/memras/memras.db": "{W}/demo/memras.db",
    "/etc/memras/memras.toml": str(REPO / "contrib" / "memras.toml.example"),
    "/tmp/srv": "{W}/demo/root",
    "/tmp/demo": "{W}/demo",
    "errors.csv": str(DATA / "evaluate" / "errors.csv"),
    "tickets.csv": str(DATA / "evaluate" / "tickets.csv"),
    "t.csv": str(DATA / "evaluate" / "tickets.csv"),
    "sel.txt": str(DATA / "sel" / "public-elist.txt"),  # ipmitool sel elist, real lines
}


@dataclass(frozen=True)
class Example:
    doc: str
    line: int
    block: int  # the line its fenced block starts on
    text: str  # as written (comments cut, continuations joined)
    output: tuple[str, ...] = ()

    @property
    def synopsis(self) -> bool:
        return "[" in self.text or re.search(r"\w\|\w", self.text) is not None

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


# --- the extractor (pure) ----------------------------------------------------------------
def fenced_blocks(text: str) -> Iterator[tuple[int, str, list[str]]]:
    """(first line number, language, lines) of each ``` or ~~~ block."""
    fence: str | None = None
    start, lang, lines = 0, "", []
    for number, line in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*(`{3,}|~{3,})(\w*)", line)
        if fence is None and m:
            fence, start, lang, lines = m[1], number + 1, m[2], []
        elif fence is not None and line.strip().startswith(fence):
            yield start, lang, lines
            fence = None
        elif fence is not None:
            lines.append(line)


SHELL = {"sh", "bash", "shell", "console"}  # a block in these holds only commands
_COMMAND = re.compile(r"^(?:\$ |sudo )?memras(?: |$)")


def _cut_comment(line: str) -> str:
    """The line up to a ``#`` that starts a shell comment (not ``CPU_SrcID#0``, not quoted),
    and up to a synopsis's description (4+ spaces then a word that is no option)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            line = line[:i]
            break
    return re.sub(r"\s{4,}(?![-\[])[A-Za-z].*$", "", line).rstrip()


def examples_in(path: Path) -> list[Example]:
    return examples_from(path.name, path.read_text())


def examples_from(doc: str, text: str) -> list[Example]:
    found: list[Example] = []
    for start, lang, lines in fenced_blocks(text):
        first = next((ln for ln in lines if ln.strip()), "")
        if lang not in SHELL and not _COMMAND.match(first.strip()):
            continue  # an output block (`memras watch  7  4 …` is a table row), a config
        i = 0
        while i < len(lines):
            raw, number = lines[i].strip(), start + i
            i += 1
            if not _COMMAND.match(raw):
                continue
            text = _cut_comment(raw)
            while text.endswith("\\") or (i < len(lines) and "[" in text
                                          and lines[i][:1].isspace()
                                          and lines[i].strip().startswith("[")):
                text = text.rstrip("\\").rstrip() + " " + _cut_comment(lines[i].strip())
                i += 1
            output: list[str] = []
            if text.startswith("$ "):
                while i < len(lines) and not lines[i].startswith("$ "):
                    output.append(lines[i])
                    i += 1
                text = text[2:]
            text = text.removeprefix("sudo ")
            for part in text.split(" && "):
                found.append(Example(doc, number, start, part.strip(), tuple(output)))
    return found


def argv_of(example: Example, words: dict[str, str], paths: dict[str, str]) -> list[str]:
    """The command line the test runs: optional groups dropped, the first of ``a|b``,
    placeholders and real-server paths substituted, a ``> FILE`` redirection dropped."""
    text = re.sub(r"\s*\[[^\[\]]*\]", "", example.text)
    tokens = shlex.split(text)[1:]
    if ">" in tokens:
        tokens = tokens[:tokens.index(">")]
    argv = []
    for token in tokens:
        if re.fullmatch(r"[\w.-]+(\|[\w.-]+)+", token):
            token = token.split("|")[0]
        if token in words:
            token = words[token]
        for real, simulated in sorted(paths.items(), key=lambda kv: -len(kv[0])):
            if token == real or token.startswith(real + "/"):
                token = simulated + token[len(real):]
                break
        for word in ("DIR", "G", "SIM"):
            if token.startswith(word + "/"):
                token = words[word] + token[len(word):]
        argv.append(token)
    return argv


def options_shown(example: Example) -> list[str]:
    return re.findall(r"(?<![\w-])(--[a-z][\w-]*)", example.text)


def test_the_extractor_reads_commands_outputs_synopses_and_continuations() -> None:
    doc = ("```\n$ memras errors --dimm X\nmemras: no DIMM called 'X'\n```\n"
           "```\nnot a command\nmemras watch   7  4\n```\n"
           "```sh\nmemras alerts ack 12 --note \"a # b\"   # comment\n"
           "memras replace DIMM [--dry-run] [--backend acpi|qemu]\n"
           "               [--resume]\n"
           "sudo memras hotplug-test --yes \\\n     --cycles 2\n"
           "memras sim create demo G && memras --root G/root sim insert 2\n```\n")
    got = [(e.text, e.output) for e in examples_from("doc.md", doc)]
    assert got == [
        ("memras errors --dimm X", ("memras: no DIMM called 'X'",)),
        ('memras alerts ack 12 --note "a # b"', ()),
        ("memras replace DIMM [--dry-run] [--backend acpi|qemu] [--resume]", ()),
        ("memras hotplug-test --yes --cycles 2", ()),
        ("memras sim create demo G", ()),
        ("memras --root G/root sim insert 2", ()),
    ]
    synopsis = Example("d", 1, 1, "memras replace DIMM [--dry-run] [--backend acpi|qemu]")
    assert argv_of(synopsis, {"DIMM": "P1"}, {}) == ["replace", "P1"]
    assert options_shown(synopsis) == ["--dry-run", "--backend"]
    export = Example("d", 1, 1, "memras audit export --format json|csv > /etc/x")
    assert argv_of(export, {}, {}) == ["audit", "export", "--format", "json"]


# --- the shape comparison (pure) ---------------------------------------------------------
_HEADER_WORD = re.compile(r"[A-Z][A-Z0-9_/()%-]*")


def is_header(line: str) -> bool:
    words = line.split()
    return len(words) >= 3 and all(_HEADER_WORD.fullmatch(w) for w in words)


def _columns(line: str) -> list[str]:
    return [c for c in re.split(r"\s{2,}", line.strip()) if c]


def shape_problems(shown: tuple[str, ...], real: str) -> list[str]:
    """What the guide shows that the real output lacks (empty: the shape matches)."""
    real_lines = real.splitlines()
    real_headers = [ln.split() for ln in real_lines if is_header(ln)]
    real_columns = [" | ".join(_columns(ln)) for ln in real_lines]
    flat = " ".join(real.split())
    problems, in_table = [], False
    for line in shown:
        if not line.strip():
            in_table = False
            continue
        if is_header(line):
            in_table = True
            if line.split() not in real_headers:
                problems.append(f"header {line.split()} not among {real_headers}")
            continue
        if in_table:
            continue  # a row: values
        columns = _columns(line)
        if len(columns) >= 2 and not line.startswith(" "):
            key = " | ".join(columns[:-1])
            if not any(c.startswith(key) for c in real_columns):
                problems.append(f"no line starting {key!r}")
            continue
        stem = re.split(r"['\"(…/\d]", line.strip(), maxsplit=1)[0].strip()
        if len(stem.split()) >= 2 and " ".join(stem.split()) not in flat:
            problems.append(f"no line with {stem!r}")
    return problems


def test_the_shape_comparison_sees_a_wrong_header_a_missing_label_and_a_changed_message(
) -> None:
    real = ("ID         DIMM       VERDICT  SINCE\nmc0:0:0:-1 P1-DIMMA1  watch    2024\n"
            "address      0x100\nmemras: no DIMM called 'Q' (did you mean: P1)\n")
    assert shape_problems(("ID DIMM VERDICT SINCE", "x y z"), real) == []
    assert shape_problems(("DIMM VERDICT SINCE",), real)
    assert shape_problems(("address   0x5",), real) == []
    assert shape_problems(("page (PFN)   0x5",), real)
    assert shape_problems(("memras: no DIMM called 'X' (…)",), real) == []
    assert shape_problems(("memras: no module called 'X'",), real)


# --- running them ------------------------------------------------------------------------
ALL = [e for doc in DOCS for e in examples_in(doc)]
BLOCKS: dict[tuple[str, int], list[Example]] = {}
for _e in ALL:
    BLOCKS.setdefault((_e.doc, _e.block), []).append(_e)


def _skip_reason(example: Example) -> str | None:
    return next((why for start, why in SKIP.items()
                 if (example.text + " ").startswith(start)), None)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``memras demo --keep DIR``: the story's errors, verdicts and alerts, the replacement
    of P1-DIMMC1 closed and audited."""
    directory = tmp_path_factory.mktemp("doc-demo") / "demo"
    code = main(["demo", "--script", "--speed", "30", "--keep", str(directory)])
    assert code == 0
    return directory


@pytest.fixture(autouse=True)
def _no_host_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """This machine's /etc/memras/memras.toml decides nothing here."""
    monkeypatch.setattr(memras.config, "DEFAULT_CONFIG_PATH", tmp_path / "no-config.toml")
    monkeypatch.delenv("MEMRAS_DB", raising=False)
    # examples that write to the working directory (hotplug-test's report) write here
    monkeypatch.chdir(tmp_path)


def _workspace(demo_server: Path, tmp_path: Path) -> Path:
    work = tmp_path / "w"
    shutil.copytree(demo_server, work / "demo", symlinks=True)  # sysfs links loop
    shutil.copy(work / "demo" / "memras.db", work / "rasdaemon.db")
    return work


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's exit for a bad option
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("block", sorted(BLOCKS), ids=lambda b: f"{b[0]}:{b[1]}")
def test_every_example_of_the_block_runs_and_shows_what_the_guide_shows(
        block: tuple[str, int], demo_server: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    examples = BLOCKS[block]
    runnable = [e for e in examples if _skip_reason(e) is None]
    if not runnable:
        pytest.skip("; ".join(sorted({_skip_reason(e) or "" for e in examples})))
    work = _workspace(demo_server, tmp_path)
    text = " ".join(e.text for e in runnable)
    creates = re.search(r"(sim create \S+|--keep) DIR\b", text) is not None
    words = dict(WORDS, DIR=str(work / ("new" if creates else "demo")), G=str(work / "g"),
                 SIM=str(work / "demo" / "root"))
    paths = {k: v.format(W=work) for k, v in PATHS.items()}
    failures = []
    for example in runnable:
        argv = argv_of(example, words, paths)
        if argv and argv[0] in ONCE and "--once" not in argv:
            argv.append("--once")
        for start, (extra, _) in EXTRA.items():
            if example.text.startswith(start):
                argv += extra
        if "--root" not in argv:
            argv = ["--root", str(work / "demo" / "root")] + argv
        if "--db" not in argv:
            argv = ["--db", str(work / "demo" / "memras.db")] + argv
        code, output = _run(argv, capsys)
        expected = next((c for start, (c, _) in EXIT.items()
                         if " ".join(["memras", *argv_of(example, words, paths)])
                         .startswith(start)), 0)
        if code != expected:
            failures.append(f"{example}\n  exit {code}, expected {expected}:\n"
                            + "\n".join("    " + ln for ln in output.splitlines()[-8:]))
            continue
        for problem in shape_problems(example.output, output):
            failures.append(f"{example}\n  {problem}")
        if example.synopsis:
            help_code, help_text = _run(argv_of(example, words, paths)[:_command_words(
                argv_of(example, words, paths))] + ["--help"], capsys)
            for option in options_shown(example):
                if option not in help_text:
                    failures.append(f"{example}\n  {option} is no option of the command")
    assert not failures, "\n".join(failures)


def _command_words(argv: list[str]) -> int:
    """How many leading words name the command (``alerts ack``, ``audit list``)."""
    n = 0
    for token in argv:
        if token.startswith("-") or not re.fullmatch(r"[a-z][a-z-]*", token):
            break
        n += 1
    return min(n, 2)


def test_every_skipped_example_is_in_the_skip_table_and_every_entry_is_used() -> None:
    used = {start for e in ALL for start in SKIP if (e.text + " ").startswith(start)}
    assert used == set(SKIP), f"skip entries no example uses: {set(SKIP) - used}"
    assert len(SKIP) <= 10, "keep the skip table short: run examples on a simulated server"


def test_the_guides_hold_examples_of_every_command_the_user_guide_documents() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    words = dict(WORDS, DIR="d", G="g", SIM="s")
    run = {command_name(argv_of(e, words, {})) for e in ALL}
    missing = sorted(set(sub.choices) - run - {"tui", "locate", "labels", "config"})
    assert not missing, f"commands without an example in a code block: {missing}"


# --- the plugin payload ------------------------------------------------------------------
def _payload_example() -> dict[str, object]:
    text = (REPO / "docs" / "plugins.md").read_text()
    section = text.split("### The alert payload", 1)[1]
    block = next(lines for _, _, lines in fenced_blocks(section))
    return dict(json.loads("\n".join(block)))


def _keys(value: object, prefix: str = "") -> set[str]:
    if not isinstance(value, dict):
        return set()
    keys = set()
    for key, item in value.items():
        keys.add(prefix + key)
        keys |= _keys(item, prefix + key + ".")
    return keys


def test_the_plugin_payload_example_is_a_payload_memras_sends(
        demo_server: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shown = _payload_example()
    code, out = _run(["--root", str(demo_server / "root"), "--db",
                      str(demo_server / "memras.db"), "alerts", "list", "--state", "all",
                      "--json"], capsys)
    assert code == 0, out
    alerts = json.loads(out)
    real = next((a for a in alerts if a["dedup_key"] == shown["dedup_key"]), None)
    assert real is not None, (f"no alert {shown['dedup_key']!r} on the demo server: "
                              f"{[a['dedup_key'] for a in alerts]}")
    real.pop("deliveries")  # `alerts list` adds it; it is not part of to_payload()
    assert _keys(shown) == _keys(real)
    for key in ("schema", "kind", "severity", "dimm", "verdict", "rule_ids", "dedup_key"):
        assert shown[key] == real[key], key
