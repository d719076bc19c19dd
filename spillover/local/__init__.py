"""The local stack's commands (`spillover local ...`), built on `spillover.drivers.local`."""
