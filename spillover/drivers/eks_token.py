"""EKS bearer tokens made in-process with botocore, as `aws eks get-token` makes them.

A token is a presigned STS GetCallerIdentity URL with the `x-k8s-aws-id: <cluster>` header
signed in, base64url without padding, prefixed `k8s-aws-v1.` (aws-iam-authenticator
pkg/token/token.go; aws-cli customizations/eks/get_token.py). EKS accepts it for 15 minutes;
the ExecCredential says it expires after 14 so clients fetch a new one before EKS refuses it.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import botocore.session
from botocore.credentials import Credentials
from botocore.hooks import HierarchicalEmitter
from botocore.model import ServiceId
from botocore.signers import RequestSigner

from spillover.errors import SpilloverError

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_HEADER = "x-k8s-aws-id"
PRESIGN_EXPIRES_S = 60  # what both reference clients sign; EKS adds its own 15 minutes
REFRESH_AFTER = timedelta(minutes=14)  # EKS refuses a token 15 minutes after signing


class EksTokenError(SpilloverError):
    """No AWS credentials to sign with: give the controller its IAM role (IRSA) or a profile."""


def sts_endpoint(region: str) -> str:
    return f"https://sts.{region}.amazonaws.com/"


def presigned_token(cluster_name: str, region: str, credentials: Credentials) -> str:
    """The bearer token for `cluster_name`, signed now with `credentials`."""
    emitter = HierarchicalEmitter()  # the signer holds it weakly: keep it alive while signing
    signer = RequestSigner(ServiceId("sts"), region, "sts", "v4", credentials, emitter)
    url = signer.generate_presigned_url(
        {
            "method": "GET",
            "url": sts_endpoint(region) + "?Action=GetCallerIdentity&Version=2011-06-15",
            "body": {},
            "headers": {CLUSTER_HEADER: cluster_name},
            "context": {},
        },
        region_name=region,
        expires_in=PRESIGN_EXPIRES_S,
        operation_name="",
    )
    encoded = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    return TOKEN_PREFIX + encoded


def session_credentials(profile: str | None = None) -> Credentials:
    """Credentials from botocore's usual chain (IRSA web identity, env, profile)."""
    session = botocore.session.Session(profile=profile)
    credentials = session.get_credentials()
    if credentials is None:
        raise EksTokenError(
            "no AWS credentials found for the EKS token: set AWS_ROLE_ARN/"
            "AWS_WEB_IDENTITY_TOKEN_FILE (IRSA), AWS_PROFILE or AWS_ACCESS_KEY_ID"
        )
    frozen = credentials.get_frozen_credentials()
    return Credentials(frozen.access_key, frozen.secret_key, frozen.token)


def exec_credential(token: str, now: datetime) -> str:
    """The ExecCredential JSON kubectl and the kubernetes client read from an exec plugin."""
    expires = (now + REFRESH_AFTER).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(
        {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "kind": "ExecCredential",
            "spec": {},
            "status": {"token": token, "expirationTimestamp": expires},
        }
    )
