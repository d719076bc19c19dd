"""The local pool driver: tritonserver processes on 127.0.0.1 behind the local HAProxy.

How local replicas run is changed here, one activity per module:

* ``layout``: each pool's slots and every port, from one port base;
* ``state``: the run directory (state file, lock, logs, gateway socket);
* ``replicas``: start a replica, wait for it to be ready and join the gateway, drain
  it and stop it (the waiting steps of ``spillover local up/scale``);
* ``converge``: the per-tick state machine the controller drives, which never waits
  on a replica, and interruption notices;
* ``driver``: ``LocalPoolDriver``, the pool driver the registry's ``local`` entry builds.

The blocking commands (``spillover local ...``) live in ``spillover.local``, built on these.
"""
