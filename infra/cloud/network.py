"""The VPC over three availability zones: public subnets for the load balancer, private ones
for the nodes, NAT gateways (one per zone, or one), and the VPC endpoints through which the
nodes reach S3, STS, ECR and Secrets Manager without the internet.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import Eks

INTERFACE_ENDPOINTS = ("sts", "ecr.api", "ecr.dkr", "secretsmanager")
GATEWAY_ENDPOINTS = ("s3",)
SUBNET_PREFIX = 20
PUBLIC_ELB_TAG = "kubernetes.io/role/elb"
INTERNAL_ELB_TAG = "kubernetes.io/role/internal-elb"


@dataclass(frozen=True)
class Network:
    vpc: aws.ec2.Vpc
    public_subnets: list[aws.ec2.Subnet]
    private_subnets: list[aws.ec2.Subnet]
    nat_gateways: list[aws.ec2.NatGateway]
    endpoints: list[aws.ec2.VpcEndpoint]


def subnet_cidrs(vpc_cidr: str, count: int) -> list[str]:
    """The first ``count`` /20 blocks of the VPC: private ones first, then public ones."""
    blocks = ipaddress.ip_network(vpc_cidr).subnets(new_prefix=SUBNET_PREFIX)
    return [str(next(blocks)) for _ in range(count)]


def network(name: str, eks: Eks, opts: pulumi.ResourceOptions) -> Network:
    """Every network resource of the cluster ``name``."""
    zones = eks.availability_zones
    vpc = aws.ec2.Vpc(
        name,
        cidr_block=eks.vpc_cidr,
        enable_dns_hostnames=True,
        enable_dns_support=True,
        tags={"Name": name},
        opts=opts,
    )
    cidrs = subnet_cidrs(eks.vpc_cidr, 2 * len(zones))
    gateway = aws.ec2.InternetGateway(name, vpc_id=vpc.id, opts=opts)
    public_routes = aws.ec2.RouteTable(
        f"{name}-public",
        vpc_id=vpc.id,
        routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)],
        opts=opts,
    )
    public: list[aws.ec2.Subnet] = []
    private: list[aws.ec2.Subnet] = []
    nats: list[aws.ec2.NatGateway] = []
    private_tables: list[aws.ec2.RouteTable] = []
    for index, zone in enumerate(zones):
        public.append(
            aws.ec2.Subnet(
                f"{name}-public-{zone}",
                vpc_id=vpc.id,
                availability_zone=zone,
                cidr_block=cidrs[len(zones) + index],
                tags={"Name": f"{name}-public-{zone}", PUBLIC_ELB_TAG: "1"},
                opts=opts,
            )
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-public-{zone}",
            subnet_id=public[-1].id,
            route_table_id=public_routes.id,
            opts=opts,
        )
        private.append(
            aws.ec2.Subnet(
                f"{name}-private-{zone}",
                vpc_id=vpc.id,
                availability_zone=zone,
                cidr_block=cidrs[index],
                tags={"Name": f"{name}-private-{zone}", INTERNAL_ELB_TAG: "1"},
                opts=opts,
            )
        )
        if eks.nat_per_zone or not nats:
            address = aws.ec2.Eip(f"{name}-nat-{zone}", domain="vpc", opts=opts)
            nats.append(
                aws.ec2.NatGateway(
                    f"{name}-{zone}",
                    allocation_id=address.id,
                    subnet_id=public[-1].id,
                    opts=opts,
                )
            )
        table = aws.ec2.RouteTable(
            f"{name}-private-{zone}",
            vpc_id=vpc.id,
            routes=[
                aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nats[-1].id)
            ],
            opts=opts,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-private-{zone}", subnet_id=private[-1].id, route_table_id=table.id, opts=opts
        )
        private_tables.append(table)
    endpoints = _endpoints(name, eks, vpc=vpc, private=private, tables=private_tables, opts=opts)
    return Network(vpc, public, private, nats, endpoints)


def _endpoints(
    name: str,
    eks: Eks,
    *,
    vpc: aws.ec2.Vpc,
    private: list[aws.ec2.Subnet],
    tables: list[aws.ec2.RouteTable],
    opts: pulumi.ResourceOptions,
) -> list[aws.ec2.VpcEndpoint]:
    """S3 as a gateway on the private route tables; the others as interfaces in the private
    subnets, open to the VPC on 443 only."""
    group = aws.ec2.SecurityGroup(
        f"{name}-endpoints",
        vpc_id=vpc.id,
        description="HTTPS from the VPC to the interface endpoints",
        ingress=[
            aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp", from_port=443, to_port=443, cidr_blocks=[eks.vpc_cidr]
            )
        ],
        opts=opts,
    )
    endpoints = [
        aws.ec2.VpcEndpoint(
            f"{name}-{service}",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{eks.region}.{service}",
            vpc_endpoint_type="Gateway",
            route_table_ids=[t.id for t in tables],
            opts=opts,
        )
        for service in GATEWAY_ENDPOINTS
    ]
    endpoints += [
        aws.ec2.VpcEndpoint(
            f"{name}-{service}",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{eks.region}.{service}",
            vpc_endpoint_type="Interface",
            private_dns_enabled=True,
            subnet_ids=[s.id for s in private],
            security_group_ids=[group.id],
            opts=opts,
        )
        for service in INTERFACE_ENDPOINTS
    ]
    return endpoints
