"""The backup bucket, the log bucket and the image registry, encrypted with customer-managed
keys.

Backup bucket: versioned, SSE-KMS, public access blocked, TLS-only policy, current and
noncurrent versions expire after ``database.backup.retention_days``. Log bucket (Loki's
chunks and index): the same without versioning (the compactor's retention and delete requests
must really delete, no old version stays behind); objects expire :data:`LOG_EXPIRY_MARGIN_DAYS`
after :data:`cap_ops.log_store.RETENTION_DAYS`, a backstop should the compactor stop. Registry:
immutable tags, scan on push, KMS, a lifecycle policy keeping the last N images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from cap_ops import log_store
from infra.cloud.keys import rotating_key
from infra.cloud.policies import tls_only

LOG_EXPIRY_MARGIN_DAYS = 7
"""Days past the log retention after which the bucket's lifecycle deletes what is left."""
LOG_EXPIRY_DAYS = log_store.RETENTION_DAYS + LOG_EXPIRY_MARGIN_DAYS


@dataclass(frozen=True)
class Storage:
    key: aws.kms.Key
    bucket: aws.s3.Bucket
    repository: aws.ecr.Repository
    logs_key: aws.kms.Key
    logs: aws.s3.Bucket


def keep_last(images: int) -> dict[str, Any]:
    """ECR lifecycle policy: expire every image beyond the newest ``images``."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"keep the last {images} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": images,
                },
                "action": {"type": "expire"},
            }
        ]
    }


def _bucket(
    name: str,
    key: aws.kms.Key,
    retention_days: int,
    opts: pulumi.ResourceOptions,
    keep: pulumi.ResourceOptions,
    *,
    versioned: bool = True,
) -> aws.s3.Bucket:
    bucket = aws.s3.Bucket(name, bucket_prefix=f"{name}-", force_destroy=False, opts=keep)
    aws.s3.BucketPublicAccessBlock(
        name,
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=opts,
    )
    if versioned:
        aws.s3.BucketVersioning(
            name,
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"
            ),
            opts=opts,
        )
    aws.s3.BucketServerSideEncryptionConfiguration(
        name,
        bucket=bucket.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="aws:kms", kms_master_key_id=key.arn
                ),
                bucket_key_enabled=True,
            )
        ],
        opts=opts,
    )
    aws.s3.BucketPolicy(
        name,
        bucket=bucket.id,
        policy=bucket.arn.apply(lambda arn: json.dumps(tls_only(arn))),
        opts=opts,
    )
    aws.s3.BucketLifecycleConfiguration(
        name,
        bucket=bucket.id,
        rules=[
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire",
                status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                    days=retention_days
                ),
                noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                    noncurrent_days=retention_days
                )
                if versioned
                else None,
                abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                    days_after_initiation=1
                ),
            )
        ],
        opts=opts,
    )
    return bucket


def _repository(
    name: str,
    key: aws.kms.Key,
    images: int,
    opts: pulumi.ResourceOptions,
    keep: pulumi.ResourceOptions,
) -> aws.ecr.Repository:
    repository = aws.ecr.Repository(
        name,
        name=name,
        image_tag_mutability="IMMUTABLE",
        image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
            scan_on_push=True
        ),
        encryption_configurations=[
            aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS", kms_key=key.arn)
        ],
        force_delete=False,
        opts=keep,
    )
    aws.ecr.LifecyclePolicy(
        name, repository=repository.name, policy=json.dumps(keep_last(images)), opts=opts
    )
    return repository


def storage(
    name: str,
    retention_days: int,
    keep_images: int,
    opts: pulumi.ResourceOptions,
    keep: pulumi.ResourceOptions,
) -> Storage:
    """The key, the backup bucket ``<name>-backups`` and the repository ``<name>``; the log
    bucket ``<name>-logs`` under its own key."""
    key = rotating_key(f"{name}-data", f"Backups and images of {name}", keep)
    bucket = _bucket(f"{name}-backups", key, retention_days, opts, keep)
    logs_key = rotating_key(f"{name}-logs", f"Logs of {name} (Loki)", keep)
    logs = _bucket(f"{name}-logs", logs_key, LOG_EXPIRY_DAYS, opts, keep, versioned=False)
    repository = _repository(name, key, keep_images, opts, keep)
    return Storage(key, bucket, repository, logs_key, logs)
