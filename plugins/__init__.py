"""Alert hooks and hardware backends shipped with memras (entry points memras.alerts / memras.backends)."""
