"""A fleet of hosts in one central PostgreSQL: each host's SQLite stays the authority,
a shipper copies what is new to the central store, and ``memras fleet`` reads it.

- :mod:`.schema`: the central tables, derived from the local models (one schema).
- :mod:`.identity`: who a host is (``/etc/machine-id`` under ``--root``, hostname).
- :mod:`.ship`: at-least-once shipping with idempotent keys and local cursors.
- :mod:`.read`: the fleet's read commands (hosts, DIMMs, failures, replacements).
"""
