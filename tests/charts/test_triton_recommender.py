"""The Triton chart: what an operator sees of a replica (ports, probes, GPU, placement, model
repository, disruption budget, optional HPA and ServiceMonitor) and which values it refuses."""

from __future__ import annotations

import re
from typing import Any

import pytest
from helm_python import HelmRenderError, HelmValuesError

from tests.charts.conftest import RenderChart
from tests.charts.rendering import (
    chart_dir,
    ci_values_files,
    container,
    load_yaml,
    pod_spec,
    selects,
)

CI = chart_dir("triton-recommender") / "ci"
PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}


def _ci(name: str) -> dict[str, Any]:
    values: dict[str, Any] = load_yaml(CI / name)
    return values


def _triton(render_triton: RenderChart, values: dict[str, Any] | None = None) -> dict[str, Any]:
    return container(render_triton(values).one("Deployment"), "tritonserver")


def _arg(triton: dict[str, Any], flag: str) -> str:
    return next(arg.split("=", 1)[1] for arg in triton["args"] if arg.startswith(f"{flag}="))


def test_container_and_services_expose_named_http_grpc_and_metrics_ports(
    render_triton: RenderChart,
) -> None:
    rendered = render_triton()
    triton = container(rendered.one("Deployment"), "tritonserver")
    assert {p["name"]: p["containerPort"] for p in triton["ports"]} == PORTS
    assert [_arg(triton, f"--{name}-port") for name in PORTS] == ["8000", "8001", "8002"]
    for service in rendered.all("Service"):
        assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
            name: (port, name) for name, port in PORTS.items()
        }


@pytest.mark.parametrize(
    "values_file",
    [pytest.param(path, id=path.name) for path in ci_values_files("triton-recommender")],
)
def test_triton_refuses_model_load_and_unload(render_triton: RenderChart, values_file: Any) -> None:
    # Polling or explicit model control would let a request past the gateway change models.
    triton = _triton(render_triton, load_yaml(values_file))
    assert _arg(triton, "--model-control-mode") == "none"
    assert not [
        arg for arg in triton["args"] if arg.startswith(("--load-model", "--repository-poll"))
    ]


def test_probes_use_tritons_health_endpoints(render_triton: RenderChart) -> None:
    triton = _triton(render_triton)
    assert triton["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert triton["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert triton["startupProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}


def test_startup_probe_budget_matches_the_arithmetic_in_its_comment(
    render_triton: RenderChart,
) -> None:
    text = (chart_dir("triton-recommender") / "values.yaml").read_text()
    match = re.search(r"periodSeconds x failureThreshold = (\d+) s x (\d+) = (\d+) s", text)
    assert match, "values.yaml lost the startup budget's arithmetic"
    period, failures, budget = (int(group) for group in match.groups())
    assert period * failures == budget
    startup = _triton(render_triton)["startupProbe"]
    assert (startup["periodSeconds"], startup["failureThreshold"]) == (period, failures)


def test_gpu_limit_comes_from_values(render_triton: RenderChart) -> None:
    assert _triton(render_triton)["resources"]["limits"]["nvidia.com/gpu"] == 1
    two = _triton(render_triton, _ci("pvc-values.yaml"))
    assert two["resources"]["limits"] == {"memory": "8Gi", "nvidia.com/gpu": 2}


def test_gpu_taint_is_tolerated_and_node_selector_comes_from_values(
    render_triton: RenderChart,
) -> None:
    spec = pod_spec(render_triton().one("Deployment"))
    assert {
        "key": "nvidia.com/gpu",
        "operator": "Equal",
        "value": "present",
        "effect": "NoSchedule",
    } in spec["tolerations"]
    assert "nodeSelector" not in spec
    spot = pod_spec(render_triton(_ci("s3-burst-values.yaml")).one("Deployment"))
    assert spot["nodeSelector"] == {"eks.amazonaws.com/capacityType": "SPOT"}
    retainted = render_triton({"tolerations": [{"key": "gpu", "operator": "Exists"}]})
    assert pod_spec(retainted.one("Deployment"))["tolerations"] == [
        {"key": "gpu", "operator": "Exists"}
    ]


def test_replicas_are_left_to_whoever_scales_the_pool(render_triton: RenderChart) -> None:
    assert "replicas" not in render_triton().one("Deployment")["spec"]
    fixed = render_triton(_ci("pvc-values.yaml")).one("Deployment")
    assert fixed["spec"]["replicas"] == 3
    hpa_owned = render_triton({"scaledExternally": False, "autoscaling": {"enabled": True}})
    assert "replicas" not in hpa_owned.one("Deployment")["spec"]


def test_disruption_budget_covers_the_replicas(render_triton: RenderChart) -> None:
    rendered = render_triton()
    budget = rendered.one("PodDisruptionBudget")
    pod_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selects(budget["spec"]["selector"]["matchLabels"], pod_labels)
    assert budget["spec"]["maxUnavailable"] == 1
    assert (
        "PodDisruptionBudget"
        not in render_triton({"podDisruptionBudget": {"enabled": False}}).kinds()
    )


def test_hpa_and_service_monitor_are_off_by_default(render_triton: RenderChart) -> None:
    kinds = render_triton().kinds()
    assert "HorizontalPodAutoscaler" not in kinds
    assert "ServiceMonitor" not in kinds


def test_hpa_scales_the_deployment_on_queue_time(render_triton: RenderChart) -> None:
    rendered = render_triton(_ci("hpa-servicemonitor-values.yaml"))
    hpa = rendered.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": rendered.one("Deployment")["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    [metric] = hpa["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "triton_queue_duration_us_per_request"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "5000"}


def test_service_monitor_scrapes_the_metrics_port_of_one_service(
    render_triton: RenderChart,
) -> None:
    rendered = render_triton(_ci("hpa-servicemonitor-values.yaml"))
    monitor = rendered.one("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = [s for s in rendered.all("Service") if selects(selector, s["metadata"]["labels"])]
    assert [s["metadata"]["name"] for s in scraped] == ["triton-recommender"]
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in scraped[0]["spec"]["ports"]}
    assert endpoint["port"] == "metrics"


def test_model_repository_from_s3_uses_irsa_and_never_aws_keys(
    render_triton: RenderChart,
) -> None:
    rendered = render_triton(_ci("s3-burst-values.yaml"))
    triton = container(rendered.one("Deployment"), "tritonserver")
    assert _arg(triton, "--model-repository") == (
        "s3://spillover-models-123456789012-us-east-1/model_repo/v3"
    )
    assert {e["name"]: e["value"] for e in triton["env"]} == {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    account = rendered.one("ServiceAccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == (
        "arn:aws:iam::123456789012:role/spillover-triton-model-read"
    )
    assert (
        pod_spec(rendered.one("Deployment"))["serviceAccountName"] == (account["metadata"]["name"])
    )
    assert "Secret" not in rendered.kinds()
    assert "model-repository" not in {
        v["name"] for v in pod_spec(rendered.one("Deployment"))["volumes"]
    }


def test_model_repository_from_a_pvc_is_mounted_read_only(render_triton: RenderChart) -> None:
    rendered = render_triton(_ci("pvc-values.yaml"))
    spec = pod_spec(rendered.one("Deployment"))
    triton = container(rendered.one("Deployment"), "tritonserver")
    assert _arg(triton, "--model-repository") == "/models"
    volume = next(v for v in spec["volumes"] if v["name"] == "model-repository")
    assert volume["persistentVolumeClaim"] == {"claimName": "nfs-model-store", "readOnly": True}
    mount = next(m for m in triton["volumeMounts"] if m["name"] == "model-repository")
    assert mount == {
        "name": "model-repository",
        "mountPath": "/models",
        "readOnly": True,
        "subPath": "spillover/model_repo",
    }
    assert "env" not in triton


def test_headless_service_lists_only_ready_replicas(render_triton: RenderChart) -> None:
    rendered = render_triton()
    headless = rendered.one("Service", "triton-recommender-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is False
    pod_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selects(headless["spec"]["selector"], pod_labels)
    disabled = render_triton({"headlessService": {"enabled": False}})
    assert [s["metadata"]["name"] for s in disabled.all("Service")] == ["triton-recommender"]


def test_load_balancer_service_for_a_burst_pool(render_triton: RenderChart) -> None:
    service = render_triton(_ci("s3-burst-values.yaml")).one("Service", "triton-recommender")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["loadBalancerSourceRanges"] == ["10.20.0.0/16"]
    annotations = service["metadata"]["annotations"]
    # EKS's built-in service controller makes an NLB from these; the Load Balancer Controller's
    # own annotations (not installed) would be ignored, leaving an internet-facing Classic LB.
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "nlb"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-internal"] == "true"
    controller_only = {
        "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type",
        "service.beta.kubernetes.io/aws-load-balancer-scheme",
    }
    assert not controller_only & annotations.keys(), "annotations nothing installed reads"


def test_triton_runs_as_the_images_triton_server_user(render_triton: RenderChart) -> None:
    spec = pod_spec(render_triton().one("Deployment"))
    assert spec["securityContext"]["runAsUser"] == 1000
    assert spec["automountServiceAccountToken"] is False
    triton = container(render_triton().one("Deployment"), "tritonserver")
    assert {"name": "tmp", "mountPath": "/tmp"} in triton["volumeMounts"]


def test_release_name_with_the_chart_name_is_the_full_name(render_triton: RenderChart) -> None:
    rendered = render_triton(release="triton-recommender-spot")
    assert rendered.one("Deployment")["metadata"]["name"] == "triton-recommender-spot"
    assert {s["metadata"]["name"] for s in rendered.all("Service")} == {
        "triton-recommender-spot",
        "triton-recommender-spot-headless",
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"replicaCount": -1},
            "at '/replicaCount': minimum: got -1, want 0",
            id="negative-replicas",
        ),
        pytest.param({"gpu": {"count": 0}}, "at '/gpu/count': minimum: got 0, want 1", id="no-gpu"),
        pytest.param(
            {"modelRepository": {"bucket": "models"}},
            "at '/modelRepository': additional properties 'bucket' not allowed",
            id="unknown-key",
        ),
        pytest.param(
            {"modelRepository": {"source": "gcs"}},
            "at '/modelRepository/source': value must be one of 's3', 'pvc'",
            id="unknown-source",
        ),
        pytest.param(
            {"modelRepository": {"source": "s3"}},
            "at '/modelRepository/s3/bucket': minLength: got 0, want 3",
            id="s3-without-bucket",
        ),
        pytest.param(
            {"modelRepository": {"source": "s3", "s3": {"bucket": "m", "prefix": "/models/"}}},
            "at '/modelRepository/s3/prefix'",
            id="prefix-with-slashes",
        ),
        pytest.param(
            {"extraEnv": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "k"}]},
            "at '/extraEnv/0/name': 'not' failed",
            id="aws-keys",
        ),
        pytest.param(
            {"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "triton-s3"}}},
            "at '/serviceAccount/annotations/eks.amazonaws.com~1role-arn'",
            id="not-a-role-arn",
        ),
        pytest.param(
            {"probes": {"startup": {"periodSeconds": "5s"}}},
            "at '/probes/startup/periodSeconds': got string, want integer",
            id="wrong-type",
        ),
    ],
)
def test_schema_refuses_bad_values_naming_the_key(
    render_triton: RenderChart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmValuesError) as refused:
        render_triton(values)
    assert message in str(refused.value)


def test_grace_period_must_cover_the_drain(render_triton: RenderChart) -> None:
    short = {"shutdown": {"preStopSleepSeconds": 5, "exitTimeoutSeconds": 35}}
    with pytest.raises(HelmRenderError, match=r"terminationGracePeriodSeconds \(40\) must exceed"):
        render_triton(short)


def test_hpa_bounds_must_be_ordered(render_triton: RenderChart) -> None:
    inverted = {"autoscaling": {"enabled": True, "minReplicas": 4, "maxReplicas": 2}}
    with pytest.raises(HelmRenderError, match=r"autoscaling.maxReplicas \(2\) is below"):
        render_triton(inverted)
