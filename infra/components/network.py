"""The burst pool's VPC: private subnets for nodes, public ones for NAT and internet-facing NLBs."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from components.tagging import CostTagger


def subnet_ranges(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """(private, public) CIDRs: an eighth of the VPC per zone for pods, small public ones.

    Private subnets are large because the VPC CNI gives every pod a VPC address; the last eighth
    is cut into /24-sized (for a /16) public subnets that only hold NAT and load balancers.
    """
    network = ipaddress.IPv4Network(vpc_cidr)
    eighths = list(network.subnets(prefixlen_diff=3))
    if zones > len(eighths) - 1:
        raise ValueError(f"{vpc_cidr} has room for {len(eighths) - 1} zones, not {zones}")
    public = list(eighths[-1].subnets(prefixlen_diff=3))
    return [str(block) for block in eighths[:zones]], [str(block) for block in public[:zones]]


class BurstNetwork(pulumi.ComponentResource):
    """VPC, subnets in each zone, one NAT gateway, and an S3 endpoint for model downloads."""

    vpc_id: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]
    public_subnet_ids: list[pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        *,
        vpc_cidr: str,
        region: str,
        zones: Sequence[str],
        cluster_name: str,
        tagger: CostTagger,
        provider: aws.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("spillover:network:BurstNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        tags = tagger("burst", "network")

        def named(suffix: str, extra: dict[str, str] | None = None) -> dict[str, str]:
            return {**tags, "Name": f"{cluster_name}-{suffix}", **(extra or {})}

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=named("vpc"),
            opts=child,
        )
        gateway = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags=named("igw"), opts=child
        )
        public_routes = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)],
            tags=named("public"),
            opts=child,
        )
        private_cidrs, public_cidrs = subnet_ranges(vpc_cidr, len(zones))
        # Kubernetes finds subnets for load balancers by these tags.
        cluster_tag = {f"kubernetes.io/cluster/{cluster_name}": "shared"}
        public_subnets, private_subnets = [], []
        for index, (zone, private_cidr, public_cidr) in enumerate(
            zip(zones, private_cidrs, public_cidrs, strict=True)
        ):
            public = aws.ec2.Subnet(
                f"{name}-public-{index}",
                vpc_id=vpc.id,
                cidr_block=public_cidr,
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags=named(f"public-{zone}", {**cluster_tag, "kubernetes.io/role/elb": "1"}),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{index}-rta",
                subnet_id=public.id,
                route_table_id=public_routes.id,
                opts=child,
            )
            private = aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=vpc.id,
                cidr_block=private_cidr,
                availability_zone=zone,
                tags=named(
                    f"private-{zone}", {**cluster_tag, "kubernetes.io/role/internal-elb": "1"}
                ),
                opts=child,
            )
            public_subnets.append(public)
            private_subnets.append(private)

        # One NAT gateway, not one per zone: the burst pool is idle most of the time, and
        # losing its zone only delays image pulls until the zone is back.
        nat_address = aws.ec2.Eip(f"{name}-nat-eip", domain="vpc", tags=named("nat"), opts=child)
        nat = aws.ec2.NatGateway(
            f"{name}-nat",
            allocation_id=nat_address.id,
            subnet_id=public_subnets[0].id,
            tags=named("nat"),
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[gateway])),
        )
        private_routes = aws.ec2.RouteTable(
            f"{name}-private-rt",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
            tags=named("private"),
            opts=child,
        )
        for index, private in enumerate(private_subnets):
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}-rta",
                subnet_id=private.id,
                route_table_id=private_routes.id,
                opts=child,
            )
        # Model downloads from S3 skip the NAT gateway and its per-GB charge.
        aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[private_routes.id],
            tags=named("s3"),
            opts=child,
        )

        self.vpc_id = vpc.id
        self.private_subnet_ids = [subnet.id for subnet in private_subnets]
        self.public_subnet_ids = [subnet.id for subnet in public_subnets]
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_ids": self.public_subnet_ids,
            }
        )
