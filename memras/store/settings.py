"""``[store]`` in memras.toml: how long errors are kept, and whether the rasdaemon mirror
is written.

```toml
[store]
keep = "400d"              # retention (memras.store.retention); absent: keep everything
rasdaemon_mirror = false   # default true
```

``rasdaemon_mirror``: memras writes each event a second time, as the row rasdaemon would
have written (``mc_event``/``mce_record``/``memory_failure_event``), so that the real
``ras-mc-ctl`` reads a memras database as its own. That row is ~230 bytes an event, as
much as rasdaemon's whole database holds for it (docs/performance.md, "Storage per
event"). Beside a running rasdaemon — memras reading its database with ``watch
--rasdaemon-db`` — rasdaemon's own file already has those rows and ``ras-mc-ctl`` reads
that, so the mirror can be switched off. memras's own reads never use it. Mirror rows
written before the switch stay (and retention deletes them with their memras rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memras.config import parse_duration
from memras.errors import UsageError

if TYPE_CHECKING:
    from memras.store.store import Store

MIN_KEEP_S = 86400.0  # a day: shorter would delete what the watcher is still judging
KEYS = ("keep", "rasdaemon_mirror")


@dataclass(frozen=True)
class StoreSettings:
    keep_s: float | None = None  # None: keep everything
    rasdaemon_mirror: bool = True

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> StoreSettings:
        """``[store]`` as parsed; every mistake is one UsageError naming the key."""
        unknown = sorted(set(section) - set(KEYS))
        if unknown:
            raise UsageError(f"store config: unknown key(s) {', '.join(unknown)}",
                             hint=f"[store] knows: {', '.join(KEYS)}")
        keep_s = None
        if "keep" in section:
            keep_s = parse_duration(section["keep"], what="keep", table="store")
            if keep_s < MIN_KEEP_S:
                raise UsageError(
                    f"store config: keep = {section['keep']!r} is shorter than a day",
                    hint='keep errors at least as long as health judges them, e.g. "400d"')
        mirror = section.get("rasdaemon_mirror", True)
        if not isinstance(mirror, bool):
            raise UsageError(f"store config: rasdaemon_mirror = {mirror!r} is not true or false")
        return cls(keep_s=keep_s, rasdaemon_mirror=mirror)

    def apply(self, store: Store) -> Store:
        """Set what the store's writer does (``rasdaemon_mirror = false``: no mirror rows)."""
        store.mirrors_rasdaemon = store.engine.dialect.name == "sqlite" and self.rasdaemon_mirror
        return store

    @classmethod
    def of(cls, config_path: str | None) -> StoreSettings:
        """``[store]`` of the config file at ``config_path`` (None: the default file)."""
        from memras.config import read_config_file

        return cls.from_section(read_config_file(config_path).section("store"))
