"""The Triton model repository in S3: private, encrypted, versioned, read through IRSA only."""

from __future__ import annotations

import mimetypes
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components import policies
from components.tagging import CostTagger


def repository_files(model_repo: Path) -> list[Path]:
    """Files of the model repository, relative to it, in a stable order.

    The ONNX file is built by `spillover model build` and may not exist yet; only what is on
    disk is uploaded, so a later `pulumi up` after the build uploads it.
    """
    if not model_repo.is_dir():
        return []
    return sorted(
        path.relative_to(model_repo)
        for path in model_repo.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") or part == "__pycache__" for part in path.parts)
    )


class ModelStore(pulumi.ComponentResource):
    """S3 bucket with the contents of model_repo/ under `prefix`."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        model_repo: Path,
        prefix: str,
        tagger: CostTagger,
        provider: aws.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("spillover:model_store:ModelStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        tags = tagger("shared", "model-store")

        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket_prefix="spillover-models-",
            # It holds only what model_repo/ and `spillover model build` recreate, so
            # `pulumi destroy` may empty it (old versions included) rather than stop halfway.
            force_destroy=True,
            tags=tags,
            opts=child,
        )
        # Objects are owned by the bucket owner and ACLs are off: access is IAM policy only.
        ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(  # noqa: E501
                        sse_algorithm="AES256"
                    ),
                )
            ],
            opts=child,
        )
        # Every upload of a model keeps the previous one: rolling back is restoring a version.
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"
            ),
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.id,
            policy=policies.deny_insecure_transport(bucket.arn),
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(depends_on=[public_access])
            ),
        )
        after_setup = pulumi.ResourceOptions.merge(
            child, pulumi.ResourceOptions(depends_on=[ownership, versioning])
        )
        for relative in repository_files(model_repo):
            key = f"{prefix}/{relative.as_posix()}"
            aws.s3.BucketObjectv2(
                f"{name}-{relative.as_posix()}",
                bucket=bucket.id,
                key=key,
                source=pulumi.FileAsset(str(model_repo / relative)),
                content_type=mimetypes.guess_type(relative.name)[0] or "application/octet-stream",
                tags=tags,
                opts=after_setup,
            )

        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn})
