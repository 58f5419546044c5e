"""The EKS control plane and its managed node group.

The control plane runs the configured version, answers on its public endpoint only from the
configured CIDRs (and privately in the VPC), logs every control-plane log type (``audit`` is
ORR 7.2's kubectl audit log) into a log group of its own kept as long as every other log
(:data:`cap_ops.log_store.RETENTION_DAYS`; EKS would otherwise create one kept forever) and
envelope-encrypts Secrets with a customer-managed KMS key
that rotates. The node group spreads over the private subnets of the three zones; its launch
template requires IMDSv2 and encrypts the root volume.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from cap_ops import log_store
from infra.cloud.keys import rotating_key
from infra.cloud.network import Network
from infra.cloud.policies import service_trust
from infra.config import Eks

LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)
NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
)
MANAGED_POLICY = "arn:aws:iam::aws:policy/{}"
HOP_LIMIT = 2  # IMDSv2 reachable from pods that need it through the node (e.g. the CNI)


@dataclass(frozen=True)
class EksCluster:
    key: aws.kms.Key
    control_plane_logs: aws.cloudwatch.LogGroup
    cluster: aws.eks.Cluster
    oidc: aws.iam.OpenIdConnectProvider
    node_role: aws.iam.Role
    launch_template: aws.ec2.LaunchTemplate
    nodes: aws.eks.NodeGroup

    @property
    def issuer(self) -> pulumi.Output[str]:
        return issuer_of(self.cluster)


def issuer_of(cluster: aws.eks.Cluster) -> pulumi.Output[str]:
    """The cluster's OIDC issuer URL (IRSA)."""
    return cluster.identities.apply(lambda ids: str(ids[0].oidcs[0].issuer))  # type: ignore[index]


def control_plane_log_group(cluster_name: str) -> str:
    """The CloudWatch log group EKS writes a cluster's control-plane logs to."""
    return f"/aws/eks/{cluster_name}/cluster"


def _role(
    name: str, service: str, policies: tuple[str, ...], opts: pulumi.ResourceOptions
) -> aws.iam.Role:
    role = aws.iam.Role(name, assume_role_policy=json.dumps(service_trust(service)), opts=opts)
    for policy in policies:
        aws.iam.RolePolicyAttachment(
            f"{name}-{policy}", role=role.name, policy_arn=MANAGED_POLICY.format(policy), opts=opts
        )
    return role


def eks_cluster(
    name: str, eks: Eks, net: Network, opts: pulumi.ResourceOptions, keep: pulumi.ResourceOptions
) -> EksCluster:
    """The control plane ``name`` in ``net`` and its nodes; ``keep`` adds ``protect``."""
    key = rotating_key(
        f"{name}-secrets", f"Envelope encryption of the Kubernetes Secrets of {name}", keep
    )
    cluster_role = _role(f"{name}-cluster", "eks.amazonaws.com", CLUSTER_POLICIES, opts)
    # The name EKS writes to: made first, so that EKS finds it instead of making its own.
    logs = aws.cloudwatch.LogGroup(
        f"{name}-control-plane",
        name=control_plane_log_group(name),
        retention_in_days=log_store.RETENTION_DAYS,
        opts=opts,
    )
    cluster = aws.eks.Cluster(
        name,
        name=name,
        version=eks.version,
        role_arn=cluster_role.arn,
        vpc_config=aws.eks.ClusterVpcConfigArgs(
            subnet_ids=[s.id for s in net.private_subnets],
            endpoint_private_access=True,
            endpoint_public_access=True,
            public_access_cidrs=list(eks.api_public_cidrs),
        ),
        enabled_cluster_log_types=list(LOG_TYPES),
        encryption_config=aws.eks.ClusterEncryptionConfigArgs(
            resources=["secrets"],
            provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=key.arn),
        ),
        access_config=aws.eks.ClusterAccessConfigArgs(authentication_mode="API"),
        opts=pulumi.ResourceOptions.merge(
            keep, pulumi.ResourceOptions(depends_on=[*net.endpoints, logs])
        ),
    )
    oidc = aws.iam.OpenIdConnectProvider(
        name, url=issuer_of(cluster), client_id_lists=["sts.amazonaws.com"], opts=opts
    )
    node_role = _role(f"{name}-nodes", "ec2.amazonaws.com", NODE_POLICIES, opts)
    template = aws.ec2.LaunchTemplate(
        f"{name}-nodes",
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
            http_endpoint="enabled",
            http_tokens="required",
            http_put_response_hop_limit=HOP_LIMIT,
        ),
        block_device_mappings=[
            aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name="/dev/xvda",
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    encrypted="true",
                    volume_size=eks.nodes.root_volume_gib,
                    volume_type="gp3",
                    delete_on_termination="true",
                ),
            )
        ],
        opts=opts,
    )
    nodes = aws.eks.NodeGroup(
        f"{name}-nodes",
        cluster_name=cluster.name,
        node_role_arn=node_role.arn,
        subnet_ids=[s.id for s in net.private_subnets],
        instance_types=list(eks.nodes.instance_types),
        scaling_config=aws.eks.NodeGroupScalingConfigArgs(
            min_size=eks.nodes.min_size,
            desired_size=eks.nodes.desired_size,
            max_size=eks.nodes.max_size,
        ),
        update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
        launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
            id=template.id, version=template.latest_version.apply(str)
        ),
        opts=opts,
    )
    return EksCluster(key, logs, cluster, oidc, node_role, template, nodes)


def kubeconfig(cluster: aws.eks.Cluster, region: str) -> pulumi.Output[str]:
    """A kubeconfig for ``cluster`` whose token comes from ``aws eks get-token`` (secret)."""

    def document(args: list[str]) -> str:
        name, endpoint, ca = args
        user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "aws",
                "args": ["eks", "get-token", "--cluster-name", name, "--region", region],
            }
        }
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": name,
                        "cluster": {"server": endpoint, "certificate-authority-data": ca},
                    }
                ],
                "users": [{"name": name, "user": user}],
                "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
                "current-context": name,
            }
        )

    ca = cluster.certificate_authority.apply(lambda c: str(c.data))
    return pulumi.Output.secret(
        pulumi.Output.all(cluster.name, cluster.endpoint, ca).apply(document)
    )
