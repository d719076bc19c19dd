"""`controller.cluster`: how the controller takes part in the cluster it runs in.

A Lease elects the one controller that acts, a `Spillover` custom resource shows
what it decided, Events on the pools' Deployments say why, and an annotation on the
resource pauses actuation. Without this section (the local stack) the controller
acts alone and none of these are written.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from spillover.config_base import StrictSettings

JITTER_FACTOR = 1.2
"""client-go's: a candidate waits up to 1.2 retry periods between tries."""

K8S_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
"""A DNS subdomain: what Kubernetes accepts as an object's name."""


class LeaderElection(StrictSettings):
    """The Lease that elects the acting controller; defaults are client-go's."""

    lease_name: str = Field(
        default="spillover-controller",
        pattern=K8S_NAME,
        description="Name of the coordination.k8s.io/v1 Lease in cluster.namespace.",
    )
    identity: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="This controller's holderIdentity; none means the pod name (HOSTNAME) "
        "and a random suffix, unique per process.",
    )
    lease_duration_seconds: int = Field(
        default=15,
        ge=1,
        description="How long followers wait, from the last change of the Lease they saw, "
        "before they may take it (whole seconds: the Lease's field is an integer).",
    )
    renew_deadline_seconds: float = Field(
        default=10,
        gt=0,
        description="How long the leader keeps trying to renew before it stops acting.",
    )
    retry_period_seconds: float = Field(
        default=2, gt=0, description="Time between tries to take or renew the Lease."
    )

    @model_validator(mode="after")
    def _ordered(self) -> LeaderElection:
        # client-go refuses the same: a leader must give up before a follower can take over.
        if self.lease_duration_seconds <= self.renew_deadline_seconds:
            raise ValueError(
                "lease_duration_seconds must be greater than renew_deadline_seconds, or a "
                "follower may take the Lease while the leader still acts"
            )
        if self.renew_deadline_seconds <= JITTER_FACTOR * self.retry_period_seconds:
            raise ValueError(
                f"renew_deadline_seconds must be greater than {JITTER_FACTOR} × "
                "retry_period_seconds, or a leader gets one try at renewing"
            )
        return self


class ClusterOperations(StrictSettings):
    """Leader election, the status resource, Events and pause in the controller's cluster."""

    namespace: str = Field(
        min_length=1,
        max_length=63,
        description="Namespace of the Lease and the Spillover status resource (the "
        "controller's own).",
    )
    kubeconfig: str | None = Field(
        default=None,
        description="Kubeconfig of that cluster; none means the in-cluster service account.",
    )
    context: str | None = Field(default=None, description="Context within the kubeconfig.")
    leader_election: LeaderElection = Field(
        default_factory=LeaderElection, description="The Lease that elects the acting controller."
    )
    status_name: str = Field(
        default="spillover",
        pattern=K8S_NAME,
        description="Name of the Spillover resource (spillovers.spillover.io) whose status "
        "the leader writes and whose spillover.io/paused annotation pauses actuation.",
    )
    status_every_ticks: int = Field(
        default=5,
        ge=1,
        description="The leader writes the resource's status every this many ticks.",
    )

    @model_validator(mode="after")
    def _context_needs_kubeconfig(self) -> ClusterOperations:
        if self.context is not None and self.kubeconfig is None:
            raise ValueError("context is set without a kubeconfig; in-cluster has no contexts")
        return self
