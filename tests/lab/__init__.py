"""Real-kernel lab tests (a package, so the shared guest stops with its last test)."""
