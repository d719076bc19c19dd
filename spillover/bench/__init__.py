"""Benchmarks that compare serving setups side by side in one run."""
