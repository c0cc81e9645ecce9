"""Capacity: change how much memory a machine has while it runs.

- :mod:`memras.capacity.chmem` — util-linux ``chmem`` requests (SIZE, RANGE, block
  range, zone) parsed, planned and executed with chmem's block choice and exit
  statuses (0 ok, 1 failure, 64 partial), plus memras's retries, cancel and audit;
- :mod:`memras.capacity.policy` — capacity on demand: when standby memory goes
  online (pressure) and when it goes back offline (hysteresis, dwell, reserve);
- :mod:`memras.capacity.vm` — the hypervisor side over QMP: pc-dimm add/remove,
  virtio-mem resize, device listing;
- :mod:`memras.capacity.partition` — move memory between two guests on one host;
- :mod:`memras.capacity.record` — the one place capacity actions are audited and
  alerted.
"""
