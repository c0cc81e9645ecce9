"""Entry-point discovery: names without imports; a broken plugin warns, the rest run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memras.alerts.alert import Alert
from memras.alerts.config import AlertsConfig
from memras.alerts.dispatcher import OK, Dispatcher, MemoryAlertStore
from memras.alerts.hooks import RecordingHook, available_hooks, load_hooks

BUILTINS = {"exec", "webhook", "syslog", "email", "prometheus"}


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed-looking distribution with a good and a broken alert hook."""
    dist = tmp_path / "memras_extra_hooks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: memras-extra-hooks\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""\
        [memras.alerts]
        pager = memras_extra_pager:PagerHook
        broken = memras_extra_broken:BrokenHook
        notahook = memras_extra_pager:NotAHook
        """))
    (tmp_path / "memras_extra_pager.py").write_text(textwrap.dedent("""\
        from memras.alerts.hooks import RecordingHook

        class PagerHook(RecordingHook):
            name = "pager"

        class NotAHook:
            def __init__(self, options):
                pass
        """))
    (tmp_path / "memras_extra_broken.py").write_text("import a_module_that_is_not_there\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtins_are_listed_without_importing_any_plugin() -> None:
    code = ("import sys; from memras.alerts.hooks import available_hooks; "
            "names = sorted(available_hooks()); "
            "loaded = [m for m in sys.modules if m.startswith('memras.plugins.alerts.')]; "
            "print(names, loaded)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    names, loaded = out.rsplit("] [", 1)
    assert all(f"'{name}'" in names for name in BUILTINS)
    assert loaded.strip() == "]"


def test_third_party_hooks_are_found_like_builtins(third_party: Path) -> None:
    assert {"pager", "broken", "notahook"} | BUILTINS <= set(available_hooks())


def test_a_hook_that_fails_to_load_warns_and_the_rest_run(
        third_party: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = AlertsConfig.from_dict({"hooks": {
        "broken": {}, "pager": {}, "notahook": {}, "nosuchhook": {},
        "webhook": {},  # the built-in, but missing its required url
    }})
    report = load_hooks(config)
    err = capsys.readouterr().err
    assert [hc.name for hc, _ in report.hooks] == ["pager"]
    assert set(report.failures) == {"broken", "notahook", "nosuchhook", "webhook"}
    assert "a_module_that_is_not_there" in report.failures["broken"]
    assert "'url' is required" in report.failures["webhook"]
    assert "no alert hook named 'nosuchhook'" in report.failures["nosuchhook"]
    assert err.count("the other hooks still run") == 4
    dispatcher = Dispatcher(MemoryAlertStore(), report.hooks, config)
    result = dispatcher.submit(Alert.from_gap("lost events", source="kmsg"))
    assert [r.status for r in result.results] == [OK]
    (_, pager), = report.hooks
    assert isinstance(pager, RecordingHook) and len(pager.sent) == 1
