"""A kubeconfig for EKS that holds no credential: tokens come from `spillover eks-token`."""

from __future__ import annotations

import json


def eks_kubeconfig(
    cluster_name: str, endpoint: str, certificate_authority: str, region: str
) -> str:
    """kubeconfig (JSON, which is YAML) whose user runs `spillover eks-token` for a fresh token.

    The exec plugin is the controller's own entry point, signing with botocore in-process, so
    no AWS CLI is needed: the controller image, `pulumi up` (from the repo's venv) and kubectl
    users all have it. The kubernetes client re-runs it when the 14-minute expiry passes.
    Whoever uses it authenticates as their own AWS identity; nothing secret is in the file.
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
                            "command": "spillover",
                            "args": [
                                "eks-token",
                                "--cluster-name",
                                cluster_name,
                                "--region",
                                region,
                            ],
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
        },
        indent=2,
    )
