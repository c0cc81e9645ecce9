"""QEMU from the host side: :mod:`memras.qemu.qmp`, memras's QMP client and event helpers.

Production code (``memras vm``/``memras partition`` through :mod:`memras.capacity.vm`,
the ``qemu`` replace backend) and the lab (:mod:`memras.lab`) both build on it. It
raises :class:`memras.errors.QemuError`, never a lab error: the lab sits above
production code, never below it.
"""
