"""The Textual terminal UI (installed as memras.tui). The core never imports this package."""
