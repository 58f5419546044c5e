"""``EksEnvironment``: every cloud resource of one environment, in one component, on an AWS
provider for the configured region; its outputs are the stack outputs of ``eks``.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.cloud.cluster import eks_cluster, kubeconfig
from infra.cloud.identities import identities
from infra.cloud.network import network
from infra.cloud.storage import storage
from infra.config import EnvConfig

RESOURCE_TYPE = "capverifier:cloud:EksEnvironment"


class EksEnvironment(pulumi.ComponentResource):
    """The VPC, the cluster and nodes, the backup and log buckets, the registry and the
    identities."""

    def __init__(
        self, name: str, cfg: EnvConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)
        eks, database = cfg.cluster.eks, cfg.database
        if eks is None or database is None:
            raise ValueError("EksEnvironment: needs cluster.eks and database")
        provider = aws.Provider(name, region=eks.region, opts=pulumi.ResourceOptions(parent=self))
        opts_ = pulumi.ResourceOptions(parent=self, provider=provider)
        keep = pulumi.ResourceOptions.merge(opts_, pulumi.ResourceOptions(protect=eks.protect))
        self.network = network(name, eks, opts_)
        self.cluster = eks_cluster(name, eks, self.network, opts_, keep)
        self.storage = storage(
            name, database.backup.retention_days, eks.registry_keep_images, opts_, keep
        )
        self.identities = identities(
            name,
            cfg,
            oidc=self.cluster.oidc,
            issuer=self.cluster.issuer,
            bucket_arn=self.storage.bucket.arn,
            key_arn=self.storage.key.arn,
            logs_bucket_arn=self.storage.logs.arn,
            logs_key_arn=self.storage.logs_key.arn,
            opts=opts_,
        )
        prefix = database.backup.prefix
        self.kubeconfig = kubeconfig(self.cluster.cluster, eks.region)
        self.outputs: dict[str, pulumi.Output[str]] = {
            "cluster_name": self.cluster.cluster.name,
            "oidc_issuer": self.cluster.issuer,
            "backup_bucket": self.storage.bucket.bucket,
            "backup_destination": pulumi.Output.concat(
                "s3://", self.storage.bucket.bucket, "/", prefix
            ),
            "repository_url": self.storage.repository.repository_url,
            "secrets_role_arn": self.identities.secrets.arn,
            "backup_role_arn": self.identities.backup.arn,
            "playbooks_role_arn": self.identities.playbooks.arn,
            "logs_bucket": self.storage.logs.bucket,
            "logs_role_arn": self.identities.logs.arn,
        }
        self.register_outputs({"kubeconfig": self.kubeconfig, **self.outputs})
