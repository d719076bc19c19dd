"""The model bucket: encrypted, versioned, never public; model_repo/ uploaded as it is."""

from __future__ import annotations

import json
from pathlib import Path

from components.model_store import repository_files
from tests.infra.conftest import REPOSITORY, Deployment, Resource, plain

BUCKET = "aws:s3/bucket:Bucket"


def bucket(deployment: Deployment) -> Resource:
    (found,) = deployment.of_type(BUCKET)
    return found


def settings_of(deployment: Deployment, typ: str) -> dict:
    """The one bucket-level setting resource of this type, checked to point at the bucket."""
    found = deployment.of_type(f"aws:s3/{typ}")
    assert len(found) == 1, f"expected one {typ} for the model bucket, found {len(found)}"
    inputs = plain(found[0].inputs)
    assert inputs["bucket"] == f"{bucket(deployment).name}-id", (
        f"{found[0].name} is on another bucket"
    )
    return inputs


def test_bucket_is_encrypted_at_rest(example: Deployment) -> None:
    rules = settings_of(
        example,
        "bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    )["rules"]
    algorithms = {rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] for rule in rules}
    assert algorithms & {"AES256", "aws:kms"}, f"model bucket unencrypted: {algorithms}"


def test_bucket_is_versioned(example: Deployment) -> None:
    versioning = settings_of(example, "bucketVersioning:BucketVersioning")
    assert versioning["versioningConfiguration"]["status"] == "Enabled"


def test_bucket_is_not_public(example: Deployment) -> None:
    block = settings_of(example, "bucketPublicAccessBlock:BucketPublicAccessBlock")
    for setting in (
        "blockPublicAcls",
        "blockPublicPolicy",
        "ignorePublicAcls",
        "restrictPublicBuckets",
    ):
        assert block[setting] is True, f"model bucket: {setting} is off"
    ownership = settings_of(example, "bucketOwnershipControls:BucketOwnershipControls")
    assert ownership["rule"]["objectOwnership"] == "BucketOwnerEnforced", "ACLs must be off"


def test_bucket_refuses_plain_http(example: Deployment) -> None:
    policy = json.loads(settings_of(example, "bucketPolicy:BucketPolicy")["policy"])
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_every_file_of_model_repo_is_uploaded_under_the_prefix(example: Deployment) -> None:
    on_disk = repository_files(REPOSITORY / "model_repo")
    assert Path("recommender/config.pbtxt") in on_disk
    objects = {o.inputs["key"]: o for o in example.of_type("aws:s3/bucketObjectv2:BucketObjectv2")}
    assert set(objects) == {f"model_repo/{path.as_posix()}" for path in on_disk}
    for key, resource in objects.items():
        assert resource.inputs["bucket"] == f"{bucket(example).name}-id", key


def test_only_files_present_are_uploaded(tmp_path: Path) -> None:
    """The ONNX file is built later; until then only what exists is uploaded, nothing fails."""
    (tmp_path / "recommender" / "1").mkdir(parents=True)
    (tmp_path / "recommender" / "config.pbtxt").write_text('name: "recommender"\n')
    (tmp_path / "recommender" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "recommender" / ".ipynb_checkpoints" / "x").write_text("")
    assert repository_files(tmp_path) == [Path("recommender/config.pbtxt")]
    assert repository_files(tmp_path / "missing") == []
