"""The controller chart: it runs the controller on the config given as values, with the least
privilege its pools need, and refuses configs that could not work in a pod."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from helm_python import HelmRenderError, HelmValuesError

from spillover.config import ConfigError, parse_config
from spillover.config_cluster import ClusterOperations, LeaderElection
from tests.charts.conftest import RenderChart
from tests.charts.rendering import (
    chart_dir,
    ci_values_files,
    container,
    kube_version_floor,
    load_yaml,
    pod_spec,
    render,
)

CI = chart_dir("spillover-controller") / "ci"
CONFIG_PATH = "/etc/spillover/spillover.yaml"
SCENARIOS = [
    pytest.param(path, id=path.name if path else "defaults")
    for path in [None, *ci_values_files("spillover-controller")]
]


def _ci(name: str) -> dict[str, Any]:
    values: dict[str, Any] = load_yaml(CI / name)
    return values


def _config_of(values: dict[str, Any]) -> dict[str, Any]:
    """A copy of the default values' config with ``values`` applied to one pool or section."""
    config: dict[str, Any] = load_yaml(chart_dir("spillover-controller") / "values.yaml")["config"]
    return {"config": {**config, **values}}


@pytest.mark.parametrize("values_file", SCENARIOS)
def test_configmap_holds_the_config_values_as_a_valid_spillover_yaml(
    charts: dict[str, helm.Chart], values_file: Path | None
) -> None:
    chart = charts["spillover-controller"]
    values = load_yaml(values_file) or {} if values_file else {}
    rendered = render(chart, values, kube_version=kube_version_floor("spillover-controller"))
    document = yaml.safe_load(rendered.one("ConfigMap")["data"]["spillover.yaml"])
    assert document == chart.merge_values(values)["config"]
    config = parse_config(document, source="the chart's spillover.yaml")
    assert config.controller.metrics_host == "0.0.0.0"


def test_default_config_is_a_private_pool_and_two_burst_pools(
    render_controller: RenderChart,
) -> None:
    document = yaml.safe_load(render_controller().one("ConfigMap")["data"]["spillover.yaml"])
    config = parse_config(document)
    private, spot, on_demand = config.pools
    assert (private.role, private.capacity_type, private.driver) == (
        "private",
        "owned",
        "kubernetes",
    )
    assert private.price.amortized is not None
    assert (spot.role, spot.capacity_type, spot.min_replicas) == ("burst", "spot", 0)
    assert (on_demand.role, on_demand.capacity_type) == ("burst", "on-demand")
    assert spot.price.hourly_usd < on_demand.price.hourly_usd
    assert all(pool.price.source for pool in config.pools)
    assert all(pool.kubernetes is not None for pool in config.pools)
    assert (
        config.gateway.runtime_api == "spillover-gateway-runtime.spillover.svc.cluster.local:9999"
    )


def test_large_numbers_survive_rendering(render_controller: RenderChart) -> None:
    rendered = render_controller(_ci("irsa-existing-claim-values.yaml"))
    document = yaml.safe_load(rendered.one("ConfigMap")["data"]["spillover.yaml"])
    assert parse_config(document).budget.monthly_cap_usd == 1_200_000


def test_the_controller_runs_on_the_mounted_config(render_controller: RenderChart) -> None:
    deployment = render_controller().one("Deployment")
    controller = container(deployment)
    assert controller["command"] == ["spillover", "controller", "run", "--config", CONFIG_PATH]
    assert "args" not in controller
    mount = next(m for m in controller["volumeMounts"] if m["mountPath"] == CONFIG_PATH)
    volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == render_controller().one("ConfigMap")["metadata"]["name"]
    assert mount["subPath"] == "spillover.yaml"


def test_image_tag_defaults_to_the_app_version(render_controller: RenderChart) -> None:
    app_version = load_yaml(chart_dir("spillover-controller") / "Chart.yaml")["appVersion"]
    image = container(render_controller().one("Deployment"))["image"]
    assert image == f"ghcr.io/spillover-project/spillover:{app_version}"
    pinned = render_controller({"image": {"tag": "0.2.0-rc.1"}})
    assert container(pinned.one("Deployment"))["image"].endswith(":0.2.0-rc.1")


def test_one_controller_by_default_recreated_on_rollout(render_controller: RenderChart) -> None:
    deployment = render_controller().one("Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_metrics_service_on_9464_reaches_the_configured_port(
    render_controller: RenderChart,
) -> None:
    for values, port in (({}, 9464), (_ci("in-cluster-values.yaml"), 9100)):
        rendered = render_controller(values)
        service = rendered.one("Service")
        assert service["spec"]["ports"] == [
            {"name": "metrics", "port": 9464, "targetPort": "metrics", "protocol": "TCP"}
        ]
        controller = container(rendered.one("Deployment"))
        assert controller["ports"] == [
            {"name": "metrics", "containerPort": port, "protocol": "TCP"}
        ]


@pytest.mark.parametrize("values_file", SCENARIOS)
def test_rbac_is_least_privilege(charts: dict[str, helm.Chart], values_file: Path | None) -> None:
    values = load_yaml(values_file) or {} if values_file else {}
    rendered = render(
        charts["spillover-controller"],
        values,
        kube_version=kube_version_floor("spillover-controller"),
    )
    assert "ClusterRole" not in rendered.kinds()
    assert "ClusterRoleBinding" not in rendered.kinds()
    roles = {role["metadata"]["name"]: role for role in rendered.all("Role")}
    assert roles
    for name, role in roles.items():
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
            assert "secrets" not in rule["resources"]
        if name.endswith("-leader"):
            continue
        granted = {
            (group, resource): set(rule["verbs"])
            for rule in role["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
        }
        assert granted == {
            ("", "pods"): {"get", "list", "watch"},
            ("apps", "deployments"): {"get", "list", "watch"},
            ("apps", "deployments/scale"): {"get", "update", "patch"},
            ("", "events"): {"create", "patch"},
        }


def test_leader_role_grants_exactly_the_lease_the_status_resource_and_events(
    render_controller: RenderChart,
) -> None:
    role = render_controller().one("Role", "spillover-controller-leader")
    assert role["metadata"]["namespace"] == "spillover"
    rules = sorted(
        (r["apiGroups"][0], r["resources"][0], tuple(sorted(r["verbs"])),
         tuple(r.get("resourceNames", ())))
        for r in role["rules"]
    )  # fmt: skip
    assert rules == [
        ("", "events", ("create", "patch"), ()),
        ("coordination.k8s.io", "leases", ("create",), ()),
        ("coordination.k8s.io", "leases", ("get", "update"), ("spillover-controller",)),
        ("spillover.io", "spillovers", ("create",), ()),
        ("spillover.io", "spillovers", ("get",), ("spillover",)),
        ("spillover.io", "spillovers/status", ("patch",), ("spillover",)),
    ]
    binding = render_controller().one("RoleBinding", "spillover-controller-leader")
    assert binding["roleRef"]["name"] == "spillover-controller-leader"
    renamed = render_controller(
        _config_of({"controller": {**_default_controller(), "cluster": {
            "namespace": "ops", "status_name": "hybrid",
            "leader_election": {"lease_name": "hybrid-controller"}}}})
    ).one("Role", "spillover-controller-leader")  # fmt: skip
    assert renamed["metadata"]["namespace"] == "ops"
    names = {
        r["resources"][0]: r.get("resourceNames") for r in renamed["rules"] if "resourceNames" in r
    }
    assert names == {"leases": ["hybrid-controller"], "spillovers": ["hybrid"],
                     "spillovers/status": ["hybrid"]}  # fmt: skip


def test_the_chart_defaults_are_the_configs_defaults() -> None:
    """role-leader.yaml falls back to these names when the values leave them out."""
    assert LeaderElection().lease_name == "spillover-controller"
    assert ClusterOperations(namespace="x").status_name == "spillover"


def test_two_replicas_need_leader_election(render_controller: RenderChart) -> None:
    assert render_controller({"replicaCount": 2}).one("Deployment")["spec"]["replicas"] == 2
    without = _config_of({"controller": {**_default_controller(), "cluster": None}})
    with pytest.raises(HelmRenderError, match="replicaCount 2 needs config.controller.cluster"):
        render_controller({**without, "replicaCount": 2})
    with pytest.raises(HelmValuesError):
        render_controller({"replicaCount": 3})


def _default_controller() -> dict[str, Any]:
    controller: dict[str, Any] = _config_of({})["config"]["controller"]
    return dict(controller)


def test_scale_is_granted_on_the_in_cluster_pools_deployments_only(
    render_controller: RenderChart,
) -> None:
    default = render_controller()
    role = default.one("Role", "spillover-controller")
    assert role["metadata"]["namespace"] == "spillover"
    [scale] = [r for r in role["rules"] if r["resources"] == ["deployments/scale"]]
    # The burst pools live on EKS (their kubeconfig): their rights are granted there.
    assert scale["resourceNames"] == ["triton-recommender"]

    two_namespaces = render_controller(_ci("in-cluster-values.yaml"))
    pool_roles = [
        r for r in two_namespaces.all("Role") if not r["metadata"]["name"].endswith("-leader")
    ]
    scaled = {
        role["metadata"]["namespace"]: rule["resourceNames"]
        for role in pool_roles
        for rule in role["rules"]
        if rule["resources"] == ["deployments/scale"]
    }
    assert scaled == {
        "inference": ["triton-recommender"],
        "inference-burst": ["triton-recommender-burst"],
    }
    account = two_namespaces.one("ServiceAccount")["metadata"]["name"]
    pool_bindings = [
        b
        for b in two_namespaces.all("RoleBinding")
        if not b["metadata"]["name"].endswith("-leader")
    ]
    for binding in pool_bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "spillover-controller",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": "spillover"}
        ]
    assert {b["metadata"]["namespace"] for b in pool_bindings} == set(scaled)


def test_rbac_can_be_left_to_someone_else(render_controller: RenderChart) -> None:
    kinds = render_controller({"rbac": {"create": False}}).kinds()
    assert not kinds & {"Role", "RoleBinding"}


def test_kubeconfigs_of_other_clusters_are_mounted_read_only(
    render_controller: RenderChart,
) -> None:
    deployment = render_controller().one("Deployment")
    volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == "kubeconfigs")
    assert volume["secret"]["secretName"] == "spillover-burst-kubeconfig"
    mount = next(m for m in container(deployment)["volumeMounts"] if m["name"] == "kubeconfigs")
    assert (mount["mountPath"], mount["readOnly"]) == ("/etc/spillover/kubeconfigs", True)
    in_cluster = render_controller(_ci("in-cluster-values.yaml")).one("Deployment")
    assert "kubeconfigs" not in {v["name"] for v in pod_spec(in_cluster)["volumes"]}


def test_ledger_lives_on_a_kept_volume(render_controller: RenderChart) -> None:
    rendered = render_controller()
    claim = rendered.one("PersistentVolumeClaim")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    data = next(v for v in pod_spec(rendered.one("Deployment"))["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]

    existing = render_controller(_ci("irsa-existing-claim-values.yaml"))
    assert "PersistentVolumeClaim" not in existing.kinds()
    data = next(v for v in pod_spec(existing.one("Deployment"))["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == "spillover-ledger"

    ephemeral = render_controller(_ci("in-cluster-values.yaml"))
    data = next(v for v in pod_spec(ephemeral.one("Deployment"))["volumes"] if v["name"] == "data")
    assert data == {"name": "data", "emptyDir": {}}
    assert "WARNING: persistence.enabled is false" in ephemeral.notes


def test_service_account_carries_the_irsa_annotation(render_controller: RenderChart) -> None:
    account = render_controller(_ci("irsa-existing-claim-values.yaml")).one("ServiceAccount")
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/spillover-controller-pricing"
    }


def test_a_new_config_rolls_the_controller(render_controller: RenderChart) -> None:
    def checksum(values: dict[str, Any]) -> str:
        pod = render_controller(values).one("Deployment")["spec"]["template"]
        return str(pod["metadata"]["annotations"]["checksum/config"])

    assert checksum({}) != checksum({"config": {"policy": {"tick_seconds": 5}}})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"replicaCount": -1}, "at '/replicaCount': minimum: got -1, want 0", id="negative"
        ),
        pytest.param(
            {"replicaCount": 3},
            "at '/replicaCount': maximum: got 3, want 2",
            id="three-controllers",
        ),
        pytest.param(
            {"persistence": {"enabeld": True}},
            "at '/persistence': additional properties 'enabeld' not allowed",
            id="unknown-chart-key",
        ),
        pytest.param(
            {"config": {"pools": [{"name": "private", "role": "primary"}]}},
            "at '/config/pools/0/role': value must be one of 'private', 'burst'",
            id="wrong-role",
        ),
        pytest.param(
            {"config": {"pools": [{"name": "private", "role": "private", "max_replica": 4}]}},
            "at '/config/pools/0': additional properties 'max_replica' not allowed",
            id="unknown-config-key",
        ),
        pytest.param(
            {"config": {"pools": [{"name": "private", "min_replicas": -1}]}},
            "at '/config/pools/0/min_replicas': minimum: got -1, want 0",
            id="negative-min-replicas",
        ),
        pytest.param(
            {"config": {"pools": [{"name": "Private-Pool"}]}},
            "at '/config/pools/0/name'",
            id="pool-name",
        ),
        pytest.param(
            {"config": {"policy": {"tick_seconds": "2s"}}},
            "at '/config/policy/tick_seconds': got string, want number",
            id="wrong-type",
        ),
        pytest.param(
            {"config": {"budget": {"action": "panic"}}},
            "at '/config/budget/action': value must be one of 'refuse_growth', 'hold', 'shed'",
            id="wrong-budget-action",
        ),
        pytest.param(
            {"config": {"pools": []}},
            "at '/config/pools': minItems: got 0, want 1",
            id="no-pools",
        ),
    ],
)
def test_schema_refuses_bad_values_naming_the_key(
    render_controller: RenderChart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmValuesError) as refused:
        render_controller(values)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"controller": {"database": "/var/lib/spillover/c.db", "metrics_host": "127.0.0.1"}},
            "config.controller.metrics_host must be 0.0.0.0 in a pod",
            id="metrics-on-loopback",
        ),
        pytest.param(
            {
                "controller": {
                    "database": "/var/lib/spillover/c.db",
                    "metrics_host": "0.0.0.0",
                    "metrics_port": 0,
                }
            },
            "config.controller.metrics_port must be a fixed port",
            id="random-metrics-port",
        ),
        pytest.param(
            {"controller": {"database": "/tmp/controller.db", "metrics_host": "0.0.0.0"}},
            "config.controller.database must be a file under persistence.mountPath",
            id="ledger-off-the-volume",
        ),
        pytest.param(
            {"gateway": {"runtime_api": "/run/spillover/haproxy.sock"}},
            "config.gateway.runtime_api must be the gateway's runtime Service as host:port",
            id="unix-socket",
        ),
    ],
)
def test_configs_that_cannot_work_in_a_pod_are_refused(
    render_controller: RenderChart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmRenderError, match=message):
        render_controller(_config_of(values))


def test_local_pools_are_refused(render_controller: RenderChart) -> None:
    config = load_yaml(chart_dir("spillover-controller") / "values.yaml")["config"]
    local = {**config["pools"][0], "driver": "local"}
    local.pop("kubernetes")
    with pytest.raises(HelmRenderError, match='pool "private" uses driver local'):
        render_controller({"config": {"pools": [local]}})


def test_a_kubeconfig_needs_the_secret_that_holds_it(render_controller: RenderChart) -> None:
    with pytest.raises(HelmRenderError, match="kubeconfigs.secretName is empty"):
        render_controller({"kubeconfigs": {"secretName": ""}})
    with pytest.raises(HelmRenderError, match="is not under kubeconfigs.mountPath"):
        render_controller({"kubeconfigs": {"mountPath": "/etc/kube"}})


@pytest.mark.xfail(
    strict=True,
    reason="spillover/config.py checks max_replicas >= min_replicas in a model validator, which "
    "its JSON Schema cannot carry: Helm installs the config and the controller refuses it at start",
)
def test_schema_refuses_max_replicas_below_min_replicas(render_controller: RenderChart) -> None:
    config = load_yaml(chart_dir("spillover-controller") / "values.yaml")["config"]
    inverted = {**config["pools"][0], "min_replicas": 4, "max_replicas": 2}
    with pytest.raises(HelmValuesError):
        render_controller({"config": {"pools": [inverted, *config["pools"][1:]]}})


def test_the_controller_refuses_what_the_schema_cannot_express(
    render_controller: RenderChart,
) -> None:
    config = load_yaml(chart_dir("spillover-controller") / "values.yaml")["config"]
    inverted = {**config["pools"][0], "min_replicas": 4, "max_replicas": 2}
    rendered = render_controller({"config": {"pools": [inverted, *config["pools"][1:]]}})
    document = yaml.safe_load(rendered.one("ConfigMap")["data"]["spillover.yaml"])
    with pytest.raises(ConfigError, match=r"pools\[0\]: max_replicas \(2\) is below min_replicas"):
        parse_config(document)
