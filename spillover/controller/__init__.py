"""The controller: observe both pools, decide, act, record — once per tick.

Layers, lowest first (checked by the import-linter contract in pyproject.toml):
snapshot / decisions (plain values) → policy (pure) → observe, actuators,
ledger (side effects) → loop (timing) → cli.
"""
