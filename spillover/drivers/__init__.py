"""Drivers: the side-effecting parts (processes, HAProxy, later Kubernetes and AWS)."""
