"""Sources to store to health to alerts: the live watcher, its pipeline, offline import."""
