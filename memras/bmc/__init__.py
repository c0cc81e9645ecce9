"""The server's BMC: its System Event Log and the slot's locator LED.

- :mod:`memras.bmc.sel`: ``ipmitool sel elist`` / ``sel list`` / ``sel list -v`` text →
  memory error records (pure; correctable/uncorrectable ECC, memory device disabled).
- :mod:`memras.bmc.ipmi`: Debian's ``ipmitool`` in-band (``-I open``) or over the LAN
  (``-I lanplus``): chassis identify on/off, reading the SEL.
- :mod:`memras.bmc.redfish`: a Redfish service (DSP0268): the Memory resource of a slot,
  ``LocationIndicatorActive`` set and read back.
- :mod:`memras.bmc.led`: one ``SlotLed`` over either, configured by ``[bmc]``
  (:mod:`memras.bmc.config`); what the workflow and ``memras led`` call.

Layer: beside :mod:`memras.host` (it talks to hardware through a tool or HTTP and
imports nothing above :mod:`memras.config`). Nothing here writes a kernel file.
"""
