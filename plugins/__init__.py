"""Alert hooks and hardware backends shipped with memras.

Registered through the same entry points as third-party plugins:
``memras.alerts`` and ``memras.backends``.
"""
