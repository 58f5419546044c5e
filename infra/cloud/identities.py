"""The workload identities (IRSA): one IAM role per workload, trusted only by its service
account through the cluster's OIDC provider, with one inline policy built in
:mod:`infra.cloud.policies`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.cloud.policies import (
    Document,
    bucket_objects,
    prefix_writer,
    secret_path_arn,
    secrets_reader,
    web_identity_trust,
)
from infra.config import EnvConfig
from infra.logs import loki
from infra.model.database import CLUSTER as DATABASE_CLUSTER
from infra.model.secrets import STORE_SERVICE_ACCOUNT

PLAYBOOKS_SERVICE_ACCOUNT = "cap-verifier-playbooks"
"""The service account the backup playbooks' jobs run as."""


@dataclass(frozen=True)
class Identities:
    secrets: aws.iam.Role
    backup: aws.iam.Role
    playbooks: aws.iam.Role
    logs: aws.iam.Role


def account_of(arn: str) -> str:
    """The account id field of an ARN."""
    return arn.split(":")[4]


def _role(
    name: str,
    trust: pulumi.Output[Document],
    policy: pulumi.Output[Document],
    opts: pulumi.ResourceOptions,
) -> aws.iam.Role:
    role = aws.iam.Role(name, assume_role_policy=trust.apply(json.dumps), opts=opts)
    aws.iam.RolePolicy(name, role=role.id, policy=policy.apply(json.dumps), opts=opts)
    return role


def identities(
    name: str,
    cfg: EnvConfig,
    *,
    oidc: aws.iam.OpenIdConnectProvider,
    issuer: pulumi.Output[str],
    bucket_arn: pulumi.Output[str],
    key_arn: pulumi.Output[str],
    logs_bucket_arn: pulumi.Output[str],
    logs_key_arn: pulumi.Output[str],
    opts: pulumi.ResourceOptions,
) -> Identities:
    """The roles of External Secrets, the database backups, the backup playbooks and Loki."""
    database = cfg.database
    assert database is not None  # the config requires it with eks
    prefix = database.backup.prefix

    def trust(namespace: str, account: str) -> pulumi.Output[Document]:
        return pulumi.Output.all(oidc.arn, issuer).apply(
            lambda args: web_identity_trust(args[0], args[1], namespace, account)
        )

    def on_prefix() -> pulumi.Output[Document]:
        return pulumi.Output.all(bucket_arn, key_arn).apply(
            lambda args: prefix_writer(args[0], prefix, args[1])
        )

    def reader(provider_arn: str) -> Document:
        account = account_of(provider_arn)
        return secrets_reader(
            secret_path_arn(cfg.secrets.store_region, account, cfg.secrets.key_prefix)
        )

    return Identities(
        secrets=_role(
            f"{name}-secrets",
            trust(cfg.namespace, STORE_SERVICE_ACCOUNT),
            oidc.arn.apply(reader),
            opts,
        ),
        backup=_role(
            f"{name}-backup", trust(database.namespace, DATABASE_CLUSTER), on_prefix(), opts
        ),
        playbooks=_role(
            f"{name}-playbooks", trust(cfg.namespace, PLAYBOOKS_SERVICE_ACCOUNT), on_prefix(), opts
        ),
        logs=_role(
            f"{name}-logs",
            trust(loki.NAMESPACE, loki.SERVICE_ACCOUNT),
            pulumi.Output.all(logs_bucket_arn, logs_key_arn).apply(
                lambda args: bucket_objects(args[0], args[1])
            ),
            opts,
        ),
    )
