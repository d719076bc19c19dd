"""Kubeconfig files that point the real kubernetes client at a fake (or real) API server."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_kubeconfig(path: Path, server: str, token: str) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "controller", "user": {"token": token}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "controller"}}],
        "current-context": "fake",
    }
    path.write_text(yaml.safe_dump(document))
    return path
