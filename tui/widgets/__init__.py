"""Reusable widgets and the text helpers every screen renders with."""
