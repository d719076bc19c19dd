"""spillover: serve on the private GPU pool first, spill over to a cloud burst pool."""

__version__ = "0.1.0"
