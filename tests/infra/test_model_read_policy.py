"""Triton's model readers, simulated against AWS's policy logic: every call its S3 filesystem makes.

Triton's S3 filesystem (core/src/filesystem/implementations/s3.h) checks the client with
HeadBucket, lists a directory with ListObjects(prefix=<dir>/) after another HeadBucket, reads a
file's metadata with HeadObject and its bytes with GetObject. IAM authorizes HeadBucket as
s3:ListBucket on the bucket with no s3:prefix key, list calls as s3:ListBucket with the prefix,
and HeadObject/GetObject as s3:GetObject on the object.
"""

from __future__ import annotations

import json

import pytest

from tests.infra.conftest import BUCKET, Deployment
from tests.infra.iam_simulation import Request, allowed

BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
MODEL = f"{BUCKET_ARN}/model_repo/recommender"

TRITON_CALLS = [
    Request("s3:ListBucket", BUCKET_ARN, call="HeadBucket"),
    Request("s3:ListBucket", BUCKET_ARN, {"s3:prefix": "model_repo/"}, "ListObjects repository"),
    Request(
        "s3:ListBucket", BUCKET_ARN, {"s3:prefix": "model_repo/recommender/"}, "ListObjects model"
    ),
    Request("s3:GetObject", f"{MODEL}/config.pbtxt", call="HeadObject config.pbtxt"),
    Request("s3:GetObject", f"{MODEL}/config.pbtxt", call="GetObject config.pbtxt"),
    Request("s3:GetObject", f"{MODEL}/1/model.onnx", call="GetObject model.onnx"),
]

NOT_TRITONS_BUSINESS = [
    Request("s3:ListBucket", BUCKET_ARN, {"s3:prefix": "other/"}, "ListObjects elsewhere"),
    Request("s3:ListBucket", BUCKET_ARN, {"s3:prefix": ""}, "ListObjects from the root"),
    Request("s3:GetObject", f"{BUCKET_ARN}/other/secret.csv", call="GetObject elsewhere"),
    Request("s3:GetObject", f"{BUCKET_ARN}/model_repo_old/x", call="GetObject look-alike prefix"),
    Request("s3:PutObject", f"{MODEL}/config.pbtxt", call="PutObject"),
    Request("s3:DeleteObject", f"{MODEL}/config.pbtxt", call="DeleteObject"),
    Request("s3:GetObject", "arn:aws:s3:::another-bucket/model_repo/x", call="another bucket"),
]


@pytest.fixture(scope="module")
def model_read_policies(example: Deployment) -> dict[str, str]:
    """The model-read policies the program attached, burst Triton's and private Triton's."""
    names = ("burst-triton-role-policy", "identity-private-triton-role-policy")
    return {name: example.named(name).inputs["policy"] for name in names}


@pytest.mark.parametrize("request_", TRITON_CALLS, ids=lambda r: r.call)
def test_triton_can_make_every_call_of_its_s3_filesystem(
    model_read_policies: dict[str, str], request_: Request
) -> None:
    for name, policy in model_read_policies.items():
        assert allowed(policy, request_), f"{name} denies Triton's {request_.call}: 403, exit"


@pytest.mark.parametrize("request_", NOT_TRITONS_BUSINESS, ids=lambda r: r.call)
def test_model_readers_reach_nothing_else(
    model_read_policies: dict[str, str], request_: Request
) -> None:
    for name, policy in model_read_policies.items():
        assert not allowed(policy, request_), f"{name} allows {request_.call}"


def _policy(statement: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_the_simulator_treats_a_missing_condition_key_as_aws_does() -> None:
    """StringLike on an absent key is false; StringLikeIfExists on one is true."""
    head_bucket = TRITON_CALLS[0]
    base = {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": BUCKET_ARN}
    strict = base | {"Condition": {"StringLike": {"s3:prefix": ["model_repo/*"]}}}
    lenient = base | {"Condition": {"StringLikeIfExists": {"s3:prefix": ["model_repo/*"]}}}
    assert not allowed(_policy(strict), head_bucket)
    assert allowed(_policy(lenient), head_bucket)


def test_the_simulator_matches_actions_case_insensitively_and_lets_deny_win() -> None:
    wild = {"Effect": "Allow", "Action": "S3:Get*", "Resource": f"{BUCKET_ARN}/*"}
    deny = {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}
    get = Request("s3:GetObject", f"{BUCKET_ARN}/a")
    assert allowed(_policy(wild), get)
    document = json.dumps({"Version": "2012-10-17", "Statement": [wild, deny]})
    assert not allowed(document, get)


def test_the_simulator_refuses_operators_it_does_not_know() -> None:
    statement = {
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": BUCKET_ARN,
        "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    }
    with pytest.raises(NotImplementedError, match="IpAddress"):
        allowed(_policy(statement), Request("s3:ListBucket", BUCKET_ARN, {"aws:SourceIp": "x"}))
