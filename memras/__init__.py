"""memras: watch memory errors, judge DIMMs, and replace failing memory with no downtime."""

__version__ = "0.1.0"
