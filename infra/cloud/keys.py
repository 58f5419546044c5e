"""Customer-managed KMS keys: rotation on, 30 days before a deleted key is gone."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

DELETION_WINDOW_DAYS = 30


def rotating_key(name: str, description: str, opts: pulumi.ResourceOptions) -> aws.kms.Key:
    return aws.kms.Key(
        name,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=DELETION_WINDOW_DAYS,
        opts=opts,
    )
