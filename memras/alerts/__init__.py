"""Alerts: from health changes, gaps and workflow events to people and pagers.

Public pieces (import from the submodules; this package imports nothing heavy):

- :mod:`.model`       ``Alert`` (``from_change``/``from_gap``/``from_workflow``/``test``),
                      ``AlertKind``, ``Severity``, ``AlertState``, ``event_evidence``;
- :mod:`.config`      ``AlertsConfig.from_dict(raw_section("alerts"))``;
- :mod:`.hooks`       ``AlertHook`` ABC, ``available_hooks``, ``load_hooks``, ``RecordingHook``;
- :mod:`.dispatcher`  ``Dispatcher`` (dedup, rate limit, retries), ``MemoryAlertStore``;
- :mod:`.service`     ``AlertService.open(store, config)`` over the memras database;
- :mod:`.api`         ``open_alerts(db_url)`` for read-only front ends.
"""
