"""`spillover eks-token`: an exec credential plugin for EKS, so no AWS CLI is needed."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "eks-token", help="print an EKS ExecCredential (kubeconfig exec plugin)"
    )
    parser.add_argument("--cluster-name", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--profile", default=None, help="AWS profile (default: the usual chain)")
    parser.set_defaults(func=_print_token)


def _print_token(args: argparse.Namespace) -> int:
    from spillover.drivers import eks_token

    credentials = eks_token.session_credentials(args.profile)
    token = eks_token.presigned_token(args.cluster_name, args.region, credentials)
    print(eks_token.exec_credential(token, datetime.now(timezone.utc)))
    return 0
