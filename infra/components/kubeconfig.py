"""A kubeconfig for EKS that holds no credential: tokens come from `aws eks get-token`."""

from __future__ import annotations

import json


def eks_kubeconfig(
    cluster_name: str, endpoint: str, certificate_authority: str, region: str
) -> str:
    """kubeconfig (JSON, which is YAML) whose user runs `aws eks get-token` for a fresh token.

    Whoever uses it authenticates as their own AWS identity: the engineer running `pulumi up`,
    or the controller through its IAM role. Nothing secret is written into the file.
    """
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster_name,
                    "cluster": {
                        "server": endpoint,
                        "certificate-authority-data": certificate_authority,
                    },
                }
            ],
            "contexts": [
                {"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}
            ],
            "current-context": cluster_name,
            "users": [
                {
                    "name": cluster_name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": [
                                "eks",
                                "get-token",
                                "--cluster-name",
                                cluster_name,
                                "--region",
                                region,
                                "--output",
                                "json",
                            ],
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
        },
        indent=2,
    )
