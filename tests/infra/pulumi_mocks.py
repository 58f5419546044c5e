"""Pulumi mocks that record every registration: type, name, URN, parent, provider, inputs and
``depends_on`` (URNs), for policies over a whole program.

``MockResourceArgs`` carries no parent or dependencies, so :class:`RecordingMonitor` reads them
from the ``RegisterResource`` request itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec

import pulumi
from pulumi.runtime import mocks, rpc, settings

STACK_TYPE = "pulumi:pulumi:Stack"

P = ParamSpec("P")
# Not annotated in the SDK: its wrapper calls the test, then awaits the Output it returns.
_runtime_test: Callable[[Callable[..., object]], Callable[..., None]] = pulumi.runtime.test


def pulumi_test(fn: Callable[P, object]) -> Callable[P, None]:
    """``pulumi.runtime.test``, typed: the test runs with the same arguments, and whatever
    ``Output`` it returns is awaited (a failed policy fails the test)."""
    return _runtime_test(fn)


def plain(value: Any) -> Any:
    """Inputs as a manifest would write them: secrets unwrapped, whole floats back to ints."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return plain(value["value"])
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    provider: str
    custom: bool
    dependencies: tuple[str, ...]
    inputs: dict[str, Any]

    @property
    def provider_urn(self) -> str:
        """The provider reference without its ``::<id>`` suffix."""
        return self.provider.rsplit("::", 1)[0]


ACCOUNT = "123456789012"
REGION = "eu-central-1"


def aws_outputs(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """What AWS would add to an AWS resource's inputs: its ARN and the outputs the program
    reads (deterministic, from the resource name)."""
    service, kind = type_.split(":")[1].split("/", maxsplit=1)[0], type_.rsplit(":", 1)[-1]
    region = "" if service == "iam" else REGION  # IAM is global
    outputs: dict[str, Any] = {"arn": f"arn:aws:{service}:{region}:{ACCOUNT}:{kind.lower()}/{name}"}
    if type_ == "aws:eks/cluster:Cluster":
        issuer = f"https://oidc.eks.{REGION}.amazonaws.com/id/{name.upper()}"
        outputs |= {
            "endpoint": f"https://{name}.eks.example",
            "certificateAuthority": {"data": "Q0E="},
            "identities": [{"oidcs": [{"issuer": issuer}]}],
        }
    if type_ == "aws:s3/bucket:Bucket":
        outputs["bucket"] = f"{name}-0123abcd"
        outputs["arn"] = f"arn:aws:s3:::{outputs['bucket']}"
    if type_ == "aws:ecr/repository:Repository":
        outputs["repositoryUrl"] = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{name}"
    if type_ == "aws:ec2/launchTemplate:LaunchTemplate":
        outputs["latestVersion"] = 1
    return outputs


class EchoMocks(pulumi.runtime.Mocks):
    """``name + "_id"`` as id, inputs echoed as outputs (plus :func:`aws_outputs` for AWS
    resources); no function is called by the program."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ.startswith("aws:"):
            outputs = aws_outputs(args.typ, args.name, outputs) | outputs
        return f"{args.name}_id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        raise AssertionError(f"unexpected function call {args.token}")


class RecordingMonitor(mocks.MockMonitor):
    def __init__(self, mocks_: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks_)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:
        register: Callable[[Any], Any] = super().RegisterResource  # not annotated in the SDK
        response = register(request)
        inputs = {} if request.type == STACK_TYPE else rpc.deserialize_properties(request.object)
        self.registrations.append(
            Registration(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=request.parent,
                provider=request.provider,
                custom=bool(request.custom),
                dependencies=tuple(request.dependencies),
                inputs=plain(inputs),
            )
        )
        return response

    def registered(self) -> list[Registration]:
        """Everything but the root stack."""
        return [r for r in self.registrations if r.type != STACK_TYPE]


@dataclass
class Run:
    """One program run under mocks: the monitor and every resource object constructed."""

    monitor: RecordingMonitor
    constructed: list[pulumi.Resource]

    def check(self, policy: Callable[[list[Registration]], None]) -> pulumi.Output[None]:
        """``policy`` over the registrations, once every constructed resource is registered.

        A test returns this Output. The registrations are not passed through the Output (Pulumi
        would walk them as inputs), and a policy's failure message names the URN.
        """
        return pulumi.Output.all(*[r.urn for r in self.constructed]).apply(
            lambda _: policy(self.monitor.registered())
        )


def install(
    stack: str, project: str, config: dict[str, str], secret_keys: Sequence[str] = ()
) -> Run:
    """Fresh mocks, a fresh root stack resource and ``config`` (CLI-style strings)."""
    settings.ROOT.set(None)  # else set_mocks keeps the previous test's stack resource
    monitor = RecordingMonitor(EchoMocks())
    pulumi.runtime.set_all_config(config, secret_keys=list(secret_keys))
    pulumi.runtime.set_mocks(
        EchoMocks(), project=project, stack=stack, preview=False, monitor=monitor
    )
    run = Run(monitor, [])

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        run.constructed.append(args.resource)

    # A legacy transformation runs synchronously in every resource constructor (SDK side, so
    # also under mocks): the complete list of what the program created, strays included.
    pulumi.runtime.register_stack_transformation(record)
    return run


def uninstall() -> None:
    pulumi.runtime.set_all_config({}, secret_keys=[])
    settings.ROOT.set(None)
