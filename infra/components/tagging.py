"""Cost-allocation tags: which pool and which part of the system every AWS dollar belongs to.

The AWS provider's default_tags put them on every resource that takes tags; resources tag
themselves explicitly where they belong to a pool other than `shared`, and where default tags do
not reach (instances and volumes a node group launches, the NLB Kubernetes creates).
Activate the keys as cost-allocation tags in the AWS Billing console to see them in Cost Explorer.
"""

from __future__ import annotations

from typing import Literal

Pool = Literal["private", "burst", "shared"]

PROJECT = "spillover:project"
STACK = "spillover:stack"
POOL = "spillover:pool"
COMPONENT = "spillover:component"
COST_TAG_KEYS = (PROJECT, STACK, POOL, COMPONENT)


def cost_tags(project: str, stack: str, pool: Pool, component: str) -> dict[str, str]:
    """The four cost tags of one resource."""
    return {PROJECT: project, STACK: stack, POOL: pool, COMPONENT: component}


def annotation_value(tags: dict[str, str]) -> str:
    """Tags in the `k=v,k=v` form of service.beta.kubernetes.io/aws-load-balancer-*-tags."""
    return ",".join(f"{key}={value}" for key, value in tags.items())


class CostTagger:
    """Builds cost tags for one stack."""

    def __init__(self, project: str, stack: str) -> None:
        self.project = project
        self.stack = stack

    def __call__(self, pool: Pool, component: str) -> dict[str, str]:
        return cost_tags(self.project, self.stack, pool, component)
