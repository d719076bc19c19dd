"""The kubeconfigs the program makes: EKS's, which holds no credential (tokens come from
`spillover eks-token`), and the admin one of the k3s cluster it builds from privateMachines."""

from __future__ import annotations

import json

import yaml


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


def k3s_kubeconfig(k3s_yaml: str, server: str) -> str:
    """k3s's admin kubeconfig (/etc/rancher/k3s/k3s.yaml), pointed at `server` from outside.

    k3s writes it for use on the server itself (https://127.0.0.1:6443); its certificate also
    names the address `pulumi up` reached the server by (tls-san), so only the URL changes.
    """
    document = yaml.safe_load(k3s_yaml)
    if not isinstance(document, dict) or not document.get("clusters"):
        raise ValueError("the first server's k3s.yaml is not a kubeconfig with a cluster")
    for entry in document["clusters"]:
        entry["cluster"]["server"] = server
    return yaml.safe_dump(document, sort_keys=False)
