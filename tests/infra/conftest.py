"""Run the real Pulumi program (infra/__main__.py) under Pulumi's mocks and record what it declares.

`deploy(config)` does what `pulumi up` does up to the engine: it puts infra/ first on sys.path
and runs infra/ as `__main__` (as pulumi-language-python does, with runpy), with stack config
made the way the CLI makes it: Pulumi.yaml's declared defaults under the stack's own values.
Instead of an engine, a mock monitor records every resource with its inputs and provider.
"""

from __future__ import annotations

import json
import runpy
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pulumi
import pytest
import yaml
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

REPOSITORY = Path(__file__).resolve().parents[2]
INFRA = REPOSITORY / "infra"
PROJECT = yaml.safe_load((REPOSITORY / "Pulumi.yaml").read_text())
EXAMPLE_STACK = yaml.safe_load((REPOSITORY / "Pulumi.example.yaml").read_text())

# The program's modules are top-level (settings, components) because Pulumi runs infra/ as a
# directory; the tests import the very same modules, not copies under another package name.
if str(INFRA) not in sys.path:
    sys.path.insert(0, str(INFRA))

ACCOUNT = "123456789012"
REGION = "us-east-1"
EKS_ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF"
BUCKET = "spillover-models-20261123"
PRIVATE_KUBECONFIG = yaml.safe_dump(
    {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "gpu", "cluster": {"server": "https://10.0.0.1:6443"}}],
        "users": [{"name": "ops", "user": {"token": "private-cluster-token"}}],
        "contexts": [{"name": "gpu", "context": {"cluster": "gpu", "user": "ops"}}],
        "current-context": "gpu",
    }
)
DEPLOYER_ROLE = (
    f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/{REGION}/"
    "AWSReservedSSO_PlatformAdmin_0123456789abcdef"
)
"""The IAM Identity Center role running `pulumi up` in the tests: a role with a path."""
DEPLOYER_SESSION = (
    f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_PlatformAdmin_0123456789abcdef/ops"
)
from settings import SECRET_CONFIG_KEYS  # noqa: E402 (infra/ is on sys.path only from here)

SECRET_KEYS = [f"spillover:{key}" for key in SECRET_CONFIG_KEYS]
"""Set encrypted, as `pulumi config set --secret` does (the program refuses them in plain text)."""
K3S_YAML = yaml.safe_dump(
    {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "default",
                "cluster": {
                    "certificate-authority-data": "Y2E=",
                    "server": "https://127.0.0.1:6443",
                },
            }
        ],
        "users": [{"name": "default", "user": {"client-key-data": "k3s-admin-client-key"}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
        "current-context": "default",
    }
)
"""What /etc/rancher/k3s/k3s.yaml holds on a k3s server: reachable from the server itself."""
K3S_TOKEN = "K10mock0123456789abcdef::server:mock-cluster-token"


@dataclass
class Resource:
    """One resource the program declared: its type, name, inputs and the provider it goes to."""

    typ: str
    name: str
    inputs: dict[str, Any]
    provider: str | None
    """Name of the explicit provider resource, None when it would use a default provider."""
    urn: str = ""
    read: bool = False
    """Read with .get() (an existing object) rather than created."""
    property_dependencies: dict[str, set[str]] = field(default_factory=dict)
    """URNs each input property waits for, as the engine orders the resource after them."""
    dependencies: set[str] = field(default_factory=set)
    """Every URN the engine creates it after (inputs' and depends_on), and deletes it before."""

    @property
    def parents(self) -> list[str]:
        """Types of the components this resource is nested in, outermost first."""
        return self.urn.split("::")[2].split("$")[:-1] if self.urn else []


@dataclass
class Deployment:
    """What one run of the program declared."""

    resources: list[Resource]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    providers: dict[str, Resource] = field(default_factory=dict)
    options: dict[tuple[str, str], pulumi.ResourceOptions] = field(default_factory=dict)
    """Resource options the program passed, by (type, name): what the engine would act on."""

    def of_type(self, typ: str) -> list[Resource]:
        return [resource for resource in self.resources if resource.typ == typ]

    def named(self, name: str) -> Resource:
        matches = [resource for resource in self.resources if resource.name == name]
        assert len(matches) == 1, f"expected one resource named {name}, found {len(matches)}"
        return matches[0]

    def by_id(self, typ: str, resource_id: str) -> Resource:
        return next(r for r in self.of_type(typ) if mock_id(r.name) == resource_id)


def mock_id(name: str) -> str:
    return f"{name}-id"


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers like AWS and Kubernetes would, with the computed outputs the program reads."""

    def __init__(self) -> None:
        self.created: list[MockResourceArgs] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.created.append(args)
        state = dict(args.inputs)
        state.update(_computed(args.typ, args.name, args.inputs, args.resource_id))
        return args.resource_id or mock_id(args.name), state

    def call(self, args: MockCallArgs) -> dict[str, Any]:
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{REGION}{zone}" for zone in "abcdef"]
            return {"id": REGION, "names": names, "zoneIds": [f"use1-az{i}" for i in range(6)]}
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": DEPLOYER_SESSION, "userId": "AROAEXAMPLE:ops"}
        if args.token == "aws:iam/getSessionContext:getSessionContext":
            assert args.args["arn"] == DEPLOYER_SESSION, args.args
            return {"arn": DEPLOYER_SESSION, "issuerArn": DEPLOYER_ROLE, "issuerName": "sso"}
        raise AssertionError(f"the program made an unexpected call: {args.token}")


def node_group_name(inputs: dict[str, Any]) -> str:
    """The name EKS gives a node group: its fixed name, or its prefix and 26 characters of AWS's."""
    return inputs.get("nodeGroupName") or inputs["nodeGroupNamePrefix"] + "0" * 26


def mock_pem(kind: str, name: str) -> str:
    """What the mocks answer for a tls resource's PEM output."""
    return f"-----BEGIN {kind}-----\n{name}\n-----END {kind}-----\n"


def _computed(typ: str, name: str, inputs: dict[str, Any], read_id: str | None) -> dict[str, Any]:
    """Outputs AWS or Kubernetes would fill in."""
    if typ == "aws:s3/bucket:Bucket":
        return {"bucket": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"}
    if typ == "aws:iam/role:Role":
        return {"arn": f"arn:aws:iam::{ACCOUNT}:role/{name}", "name": name}
    if typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
        host = str(inputs.get("url", "")).removeprefix("https://")
        return {"arn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"}
    if typ == "aws:eks/cluster:Cluster":
        return {
            "arn": f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{inputs['name']}",
            "endpoint": "https://0123456789ABCDEF.gr7.us-east-1.eks.amazonaws.com",
            "certificateAuthority": {"data": "Y2VydGlmaWNhdGU="},
            "identities": [{"oidcs": [{"issuer": EKS_ISSUER}]}],
        }
    if typ == "aws:eks/nodeGroup:NodeGroup":
        group = node_group_name(inputs)
        return {
            "arn": f"arn:aws:eks:{REGION}:{ACCOUNT}:nodegroup/{inputs['clusterName']}/{group}/1a2b",
            "resources": [{"autoscalingGroups": [{"name": f"eks-{group}-1a2b"}]}],
        }
    if typ == "aws:ec2/launchTemplate:LaunchTemplate":
        return {"latestVersion": 1}
    # PEM-shaped stand-ins naming the resource, so a test can tell which key or cert went where.
    if typ == "tls:index/privateKey:PrivateKey":
        return {"privateKeyPem": mock_pem("PRIVATE KEY", name)}
    if typ in (
        "tls:index/selfSignedCert:SelfSignedCert",
        "tls:index/locallySignedCert:LocallySignedCert",
    ):
        return {"certPem": mock_pem("CERTIFICATE", name)}
    if typ == "tls:index/certRequest:CertRequest":
        return {"certRequestPem": mock_pem("CERTIFICATE REQUEST", name)}
    # The first server's root-only files, read by `sudo cat`; every other step prints progress.
    if typ == "command:remote:Command":
        if name.endswith("-kubeconfig"):
            return {"stdout": K3S_YAML, "stderr": ""}
        if name.endswith("-token"):
            return {"stdout": K3S_TOKEN + "\n", "stderr": ""}
        return {"stdout": f"{name} done\n", "stderr": ""}
    if typ == "kubernetes:helm.sh/v3:Release":
        return {"status": {"namespace": inputs.get("namespace"), "name": inputs.get("name")}}
    if typ == "kubernetes:core/v1:Service" and read_id:
        if name.startswith("burst-"):
            hostname = f"{read_id.split('/')[-1]}-0a1b2c.elb.{REGION}.amazonaws.com"
            return {"status": {"loadBalancer": {"ingress": [{"hostname": hostname}]}}}
        return {"status": {"loadBalancer": {}}}
    if typ.startswith("aws:"):
        return {"arn": f"arn:aws:{typ.split(':')[1].split('/')[0]}:{REGION}:{ACCOUNT}:{name}"}
    return {}


def stack_config(**overrides: Any) -> dict[str, Any]:
    """Pulumi.yaml's defaults, then the example stack's values, then `overrides` (None unsets)."""
    values = {key: spec["default"] for key, spec in PROJECT["config"].items() if "default" in spec}
    for key, value in EXAMPLE_STACK["config"].items():
        values[key.removeprefix("spillover:")] = value
    values["privateKubeconfig"] = PRIVATE_KUBECONFIG
    for key, value in overrides.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return values


def wire_value(value: Any) -> str:
    """A config value as the CLI hands it to the program: strings as is, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def use_config(values: dict[str, Any], plaintext: tuple[str, ...] = ()) -> None:
    """Hand the program this config; `plaintext` names secret keys set without --secret."""
    pulumi.runtime.set_all_config(
        {f"spillover:{key}": wire_value(value) for key, value in values.items()},
        secret_keys=[key for key in SECRET_KEYS if key.removeprefix("spillover:") not in plaintext],
    )


class DependencyRecordingMonitor(MockMonitor):
    """A mock monitor that also keeps what each resource's inputs depend on, by input name."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.property_dependencies: dict[tuple[str, str], dict[str, set[str]]] = {}
        self.dependencies: dict[tuple[str, str], set[str]] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (the gRPC method's name)
        self.property_dependencies[(request.type, request.name)] = {
            prop: set(deps.urns) for prop, deps in request.propertyDependencies.items()
        }
        self.dependencies[(request.type, request.name)] = set(request.dependencies)
        return super().RegisterResource(request)


def start_mocks(mocks: RecordingMocks, monitor: MockMonitor | None = None) -> None:
    # A new root stack per run: exports of one run must not leak into the next.
    pulumi.runtime.settings.set_root_resource(None)  # type: ignore[arg-type]
    pulumi.runtime.set_mocks(
        mocks, project="spillover", stack="test", preview=False, monitor=monitor
    )


def deploy(values: dict[str, Any], mocks: RecordingMocks | None = None) -> Deployment:
    """Run infra/ as Pulumi would, with this stack config; return what it declared.

    Pass `mocks` to see what was created even when the program fails."""
    mocks = mocks or RecordingMocks()
    monitor = DependencyRecordingMonitor(mocks)
    start_mocks(mocks, monitor)
    use_config(values)
    outputs: dict[str, Any] = {}
    secret: set[str] = set()

    async def collect() -> None:
        stack = pulumi.runtime.get_root_resource()
        for key, value in stack.outputs.items():  # type: ignore[union-attr]
            output = pulumi.Output.from_input(value)
            outputs[key] = await output.future()
            if await output.is_secret():
                secret.add(key)

    @pulumi.runtime.test
    def run() -> Any:
        runpy.run_path(str(INFRA), run_name="__main__")
        return collect()

    options: dict[tuple[str, str], pulumi.ResourceOptions] = {}
    original = pulumi.CustomResource.__init__

    def recording(
        self: Any, t: str, name: str, props: Any = None, opts: Any = None, *a: Any, **k: Any
    ) -> None:
        options[(t, name)] = opts or pulumi.ResourceOptions()
        original(self, t, name, props, opts, *a, **k)

    with mock.patch.object(pulumi.CustomResource, "__init__", recording):
        run()
    deployment = _deployment(mocks, monitor, outputs, secret)
    deployment.options = options
    return deployment


def _deployment(
    mocks: RecordingMocks,
    monitor: DependencyRecordingMonitor,
    outputs: dict[str, Any],
    secret: set[str],
) -> Deployment:
    urns = {
        (urn.split("::")[-1], urn.split("::")[2].split("$")[-1]): urn for urn in monitor.resources
    }
    resources = []
    for args in mocks.created:
        provider_id = args.provider.split("::")[-1] if args.provider else None
        resources.append(
            Resource(
                typ=args.typ,
                name=args.name,
                inputs=args.inputs,
                provider=provider_id.removesuffix("-id") if provider_id else None,
                urn=urns.get((args.name, args.typ), ""),
                read=args.custom is None and args.resource_id is not None,
                property_dependencies=monitor.property_dependencies.get((args.typ, args.name), {}),
                dependencies=monitor.dependencies.get((args.typ, args.name), set()),
            )
        )
    providers = {r.name: r for r in resources if r.typ.startswith("pulumi:providers:")}
    return Deployment(resources, outputs, secret, providers)


def pytest_configure(config: pytest.Config) -> None:
    # pulumi_aws warns about its own deprecated aliases (BucketV2, ...) when a module is imported,
    # whichever names a program uses; the program uses the current ones.
    config.addinivalue_line(
        "filterwarnings",
        r"ignore:.* has been deprecated in favor of:DeprecationWarning:pulumi_aws\.",
    )
    # pulumi_command's package imports its deprecated CopyFile; the program uses CopyToRemote.
    config.addinivalue_line(
        "filterwarnings",
        r"ignore:This resource is deprecated:DeprecationWarning:pulumi_command\.",
    )


@pytest.fixture(scope="session")
def example() -> Deployment:
    """The example stack (Pulumi.example.yaml over Pulumi.yaml's defaults), deployed once."""
    return deploy(stack_config())


@pytest.fixture
def config_values() -> Iterator[dict[str, Any]]:
    yield stack_config()


_SECRET_SIG = "4dabf18193072939515e22adb298388d"


def plain(value: Any) -> Any:
    """Inputs with Pulumi's secret wrappers removed and whole floats back to ints (as JSON has)."""
    if isinstance(value, dict):
        if _SECRET_SIG in value:
            return plain(value.get("value"))
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def is_secret_input(value: Any) -> bool:
    return isinstance(value, dict) and _SECRET_SIG in value


def read_settings(values: dict[str, Any], plaintext: tuple[str, ...] = ()) -> Any:
    """infra/settings.load_settings on this stack config, inside a Pulumi program run."""
    from settings import load_settings

    start_mocks(RecordingMocks())
    use_config(values, plaintext)
    loaded: list[Any] = []

    @pulumi.runtime.test
    def run() -> None:
        loaded.append(load_settings(pulumi.Config()))

    run()
    return loaded[0]


@pytest.fixture(autouse=True, scope="session")
def event_loop_for_pulumi() -> Iterator[None]:
    """Pulumi's runtime asks for the thread's current event loop; an earlier test's
    `asyncio.run` leaves none. Session-scoped, like the deployment fixture that
    needs it, and set up before it."""
    import asyncio

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        asyncio.set_event_loop(None)
        loop.close()
