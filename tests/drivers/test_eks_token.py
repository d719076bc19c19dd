"""EKS tokens: checked against botocore's own SigV4 query signer, then through the real
kubernetes client's exec-plugin flow against the fake API server."""

from __future__ import annotations

import base64
import contextlib
import datetime as real_datetime
import json
import os
import sys
import time
import types
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from kubernetes import client
from kubernetes import config as kube_config_loader
from kubernetes.config import kube_config

from infra.components.kubeconfig import eks_kubeconfig
from spillover.drivers import eks_token
from tests.drivers.fake_kube_api import Deployment, FakeKubeApi

CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
FROZEN = real_datetime.datetime(2026, 12, 2, 12, 0, 0)
REGION = "eu-west-1"
CLUSTER = "spillover-burst"


def _decode(token: str) -> str:
    assert token.startswith("k8s-aws-v1.")
    body = token.removeprefix("k8s-aws-v1.")
    assert "=" not in body, "base64url without padding, as EKS expects"
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


@pytest.fixture
def frozen_signing_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: FROZEN)


def test_the_token_is_a_presigned_get_caller_identity_with_the_cluster_header_signed(
    frozen_signing_clock: None,
) -> None:
    url = urlsplit(_decode(eks_token.presigned_token(CLUSTER, REGION, CREDENTIALS)))
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert (url.scheme, url.netloc, url.path) == ("https", f"sts.{REGION}.amazonaws.com", "/")
    assert query["Action"] == "GetCallerIdentity"
    assert query["Version"] == "2011-06-15"
    assert query["X-Amz-Expires"] == "60"
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"].split(";")
    assert query["X-Amz-Date"] == "20261202T120000Z"

    expected = AWSRequest(
        method="GET",
        url=f"https://sts.{REGION}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
        headers={"x-k8s-aws-id": CLUSTER},
    )
    SigV4QueryAuth(CREDENTIALS, "sts", REGION, expires=60).add_auth(expected)
    expected_query = parse_qs(urlsplit(expected.url).query)
    assert query["X-Amz-Signature"] == expected_query["X-Amz-Signature"][0]


def test_a_token_for_another_cluster_has_another_signature(frozen_signing_clock: None) -> None:
    """The cluster name is inside the signature, so EKS can refuse a token minted for another."""
    ours = _decode(eks_token.presigned_token(CLUSTER, REGION, CREDENTIALS))
    theirs = _decode(eks_token.presigned_token("other", REGION, CREDENTIALS))
    assert ours != theirs


def test_the_exec_credential_expires_before_eks_refuses_the_token() -> None:
    now = real_datetime.datetime(2026, 12, 2, 12, 0, tzinfo=real_datetime.timezone.utc)
    status = json.loads(eks_token.exec_credential("k8s-aws-v1.x", now))["status"]
    expiry = real_datetime.datetime.fromisoformat(status["expirationTimestamp"])
    assert real_datetime.timedelta(0) < expiry - now <= real_datetime.timedelta(minutes=14)


class _ShiftedDatetime(real_datetime.datetime):
    shift = real_datetime.timedelta(0)

    @classmethod
    def now(cls, tz=None):  # type: ignore[no-untyped-def]
        return real_datetime.datetime.now(tz) + cls.shift


def test_the_kubernetes_client_sends_an_eks_token_and_a_new_one_after_the_refresh_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exported kubeconfig's exec plugin (`spillover eks-token`) through the real client."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS.secret_key)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    clock = types.SimpleNamespace(datetime=_ShiftedDatetime, timezone=real_datetime.timezone)
    monkeypatch.setattr(kube_config, "datetime", clock)
    with FakeKubeApi(token="unknown") as kube_api:
        kube_api.add_deployment(Deployment("spillover", "triton", replicas=1, match_labels={}))
        document = json.loads(eks_kubeconfig(CLUSTER, kube_api.url, "", REGION))
        del document["clusters"][0]["cluster"]["certificate-authority-data"]
        path = tmp_path / "kubeconfig"
        path.write_text(json.dumps(document))
        api = client.AppsV1Api(
            kube_config_loader.new_client_from_config(str(path), persist_config=False)
        )

        def sent_tokens() -> list[str]:
            # The fake refuses unknown tokens; what was sent is what we check.
            with contextlib.suppress(client.ApiException):
                api.read_namespaced_deployment_scale("triton", "spillover")
            return [r.headers["authorization"] for r in kube_api.requests]

        first = sent_tokens()[-1]
        assert first.startswith("Bearer k8s-aws-v1.")
        assert "x-k8s-aws-id" in _decode(first.removeprefix("Bearer "))
        time.sleep(1.1)  # a new X-Amz-Date, so a re-signed token differs
        assert sent_tokens()[-1] == first, "a token younger than 14 minutes is reused"
        _ShiftedDatetime.shift = real_datetime.timedelta(minutes=14, seconds=1)
        try:
            refreshed = sent_tokens()[-1]
        finally:
            _ShiftedDatetime.shift = real_datetime.timedelta(0)
        assert refreshed.startswith("Bearer k8s-aws-v1.")
        assert refreshed != first, "after the refresh point the client fetches a new token"
