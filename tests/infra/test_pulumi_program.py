"""The Pulumi program under mocks, for every stack in both delivery modes: policies over what it
registers (house style: each test returns ``Output.all(urns).apply(check)``, URNs in messages).

- direct mode registers exactly ``model(cfg, artefacts)`` (same content) and the platform charts as
  Helm releases; GitOps mode only Argo CD and the bootstrap objects;
- every resource sits in a component, on the stack's provider and kubeconfig context;
- later sync waves depend on earlier ones, the objects on the charts;
- bad config and bad manifests fail before any resource exists.

Each policy is also shown to catch a deliberately bad input.
"""

from __future__ import annotations

import dataclasses
import json
import re
import runpy
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
from config_edits import changed
from infra.__main__ import build, main
from infra.artefacts import Artefacts
from infra.charts import ARGOCD, PLATFORM_CHARTS, Chart, for_env
from infra.cloud.values import CLOUD_KEYS, applicable
from infra.components import (
    GitOpsBootstrap,
    GitOpsBootstrapArgs,
    KubernetesObjects,
    KubernetesObjectsArgs,
    PlatformCharts,
    PlatformChartsArgs,
)
from infra.components.kubernetes_objects import FIRST_KINDS
from infra.config import ENVIRONMENTS, PROJECT, ConfigError, EnvConfig, load
from infra.model import WAVE_ANNOTATION, model
from infra.stack import decode, stack_config
from pulumi_mocks import ACCOUNT, REGION, Registration, Run, install, pulumi_test, uninstall
from ruamel.yaml import YAML

from infra import gitops

ROOT = Path(__file__).resolve().parents[2]
RELEASE = "kubernetes:helm.sh/v3:Release"
RENDERED_CHART = "kubernetes:helm.sh/v4:Chart"
CHART_TYPES = (RELEASE, RENDERED_CHART)
PROVIDER = "pulumi:providers:kubernetes"
COMPONENT_PREFIX = "capverifier:"
MODES = pytest.mark.parametrize("gitops_mode", [False, True], ids=["direct", "gitops"])
ENVS = pytest.mark.parametrize("env", ENVIRONMENTS)

Problems = list[str]


# --- config as the Pulumi CLI hands it over ----------------------------------------------------


def cli_value(value: Any) -> str:
    """A YAML config value as the CLI passes it: strings as is, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def cli_config(env: str, changes: Mapping[str, Any] | None = None) -> dict[str, str]:
    """``Pulumi.<env>.yaml`` as CLI strings, some dotted keys changed (None: removed)."""
    document = YAML(typ="safe", pure=True).load((ROOT / f"Pulumi.{env}.yaml").read_text())
    values = dict(document["config"])
    for key, value in (changes or {}).items():
        section, *path = key.split(".")
        parent, last = values, f"{PROJECT}:{section}"
        for name in path:
            parent, last = parent[last], name
        parent.pop(last, None)
        if value is not None:
            parent[last] = value
    return {key: cli_value(value) for key, value in values.items()}


# --- harness -------------------------------------------------------------------------------------


@pytest.fixture
def stack() -> Iterator[Callable[..., Run]]:
    """``stack(env, changes)``: fresh mocks and CLI-style config for one stack, then reset."""

    def start(env: str, changes: Mapping[str, Any] | None = None) -> Run:
        return install(env, PROJECT, cli_config(env, changes))

    yield start
    uninstall()


# --- policies: each returns its problems, one line per resource, naming the URN ----------------


def object_key(inputs: Mapping[str, Any]) -> tuple[str, str, str, str]:
    meta = inputs.get("metadata") or {}
    return (inputs["apiVersion"], inputs["kind"], meta.get("namespace", ""), meta["name"])


def kubernetes_objects(registrations: Sequence[Registration]) -> list[Registration]:
    return [
        r
        for r in registrations
        if r.custom and r.type.startswith("kubernetes:") and r.type != RELEASE
    ]


def objects_match(
    registrations: Sequence[Registration], manifests: Sequence[Mapping[str, Any]]
) -> Problems:
    """The Kubernetes objects registered are exactly ``manifests``, field for field."""
    registered = {object_key(r.inputs): r for r in kubernetes_objects(registrations)}
    expected = {object_key(m): m for m in manifests}
    problems = [f"{registered[k].urn}: not in the manifests" for k in registered.keys() - expected]
    problems += [f"{'/'.join(k)}: manifest not registered" for k in expected.keys() - registered]
    problems += [
        f"{registered[k].urn}: inputs differ from the manifest"
        for k in registered.keys() & expected.keys()
        if registered[k].inputs != expected[k]
    ]
    return sorted(problems)


def releases_match(registrations: Sequence[Registration], charts: Sequence[Chart]) -> Problems:
    """One Helm release per chart (a client-side rendered chart for the CRD bundles too big for
    a release): chart, version, repository, namespace and values."""
    registered = {r.inputs.get("name"): r for r in registrations if r.type in CHART_TYPES}
    expected = {c.name: c for c in charts}
    problems = [f"{registered[n].urn}: not a chart" for n in registered.keys() - expected]
    problems += [f"chart {n}: no release" for n in expected.keys() - registered]
    for name in expected.keys() & registered.keys():
        chart, inputs = expected[name], registered[name].inputs
        source = (
            {"chart": f"oci://{chart.repo_url}/{chart.chart}"}
            if chart.oci
            else {"chart": chart.chart, "repositoryOpts": {"repo": chart.repo_url}}
        )
        wanted = {
            **source,
            "name": chart.name,
            "version": chart.version,
            "namespace": chart.namespace,
            "values": json.loads(json.dumps(chart.values)),
        }
        if registered[name].type != (RELEASE if chart.helm_release else RENDERED_CHART):
            problems.append(f"{registered[name].urn}: helm_release={chart.helm_release}")
        if chart.helm_release:
            wanted |= {"createNamespace": True, "atomic": True}
        got = {k: inputs.get(k) for k in wanted}
        if got != wanted or ("repositoryOpts" in inputs) != (not chart.oci):
            problems.append(f"{registered[name].urn}: {got} != {wanted}")
    return sorted(problems)


def parented(registrations: Sequence[Registration]) -> Problems:
    """Only the provider and components at the top; everything else inside a component."""
    by_urn = {r.urn: r for r in registrations}
    problems: Problems = []
    for r in registrations:
        parent = by_urn.get(r.parent)
        top_level = parent is None
        if top_level and not (r.type == PROVIDER or r.type.startswith(COMPONENT_PREFIX)):
            problems.append(f"{r.urn}: top-level resource outside any component")
        if not top_level and not (parent and parent.type.startswith(COMPONENT_PREFIX)):
            problems.append(f"{r.urn}: parent {r.parent} is not a component")
    return problems


def on_provider(registrations: Sequence[Registration], context: str | None) -> Problems:
    """One explicit provider on the stack's context; every Kubernetes resource uses it."""
    providers = [r for r in registrations if r.type == PROVIDER]
    if len(providers) != 1:
        return [f"expected one Kubernetes provider, got {[p.urn for p in providers]}"]
    provider = providers[0]
    problems: Problems = []
    if provider.inputs.get("context") != context:
        problems.append(
            f"{provider.urn}: context {provider.inputs.get('context')!r} != {context!r}"
        )
    problems += [
        f"{r.urn}: provider {r.provider or '(default)'}, not {provider.urn}"
        for r in registrations
        if r.custom and r.type.startswith("kubernetes:") and r.provider_urn != provider.urn
    ]
    return problems


def _step(inputs: Mapping[str, Any]) -> tuple[int, int]:
    annotations = (inputs.get("metadata") or {}).get("annotations") or {}
    return int(annotations.get(WAVE_ANNOTATION, "0")), 0 if inputs["kind"] in FIRST_KINDS else 1


def ordered(registrations: Sequence[Registration]) -> Problems:
    """Sync-wave order, as Argo CD applies it.

    Releases: each wave depends on exactly the releases of the previous wave. Objects (per
    component): each step (wave; namespaces and CRDs first) depends on exactly the previous
    step, and the first step on every release (the charts' CRDs and controllers).
    """
    releases = [r for r in registrations if r.type in CHART_TYPES]
    # Data edges to the cloud resources (an object bound to a role ARN) are not wave order.
    cloud = {r.urn for r in registrations if r.type.startswith("aws:")}
    charts = {c.name: c for c in (*PLATFORM_CHARTS, ARGOCD)}
    problems: Problems = []
    waves = sorted({charts[r.inputs["name"]].sync_wave for r in releases})
    for r in releases:
        index = waves.index(charts[r.inputs["name"]].sync_wave)
        wanted = {
            x.urn
            for x in releases
            if index and charts[x.inputs["name"]].sync_wave == waves[index - 1]
        }
        # Data edges to the cloud resources (Loki's bucket and role) are not wave order.
        if set(r.dependencies) - cloud != wanted:
            problems.append(f"{r.urn}: depends on {sorted(r.dependencies)}, not {sorted(wanted)}")
    objects = kubernetes_objects(registrations)
    for parent in {r.parent for r in objects}:
        children = [r for r in objects if r.parent == parent]
        steps = sorted({_step(r.inputs) for r in children})
        for r in children:
            dependencies = set(r.dependencies) - cloud
            index = steps.index(_step(r.inputs))
            wanted = (
                {x.urn for x in children if _step(x.inputs) == steps[index - 1]}
                if index
                else {x.urn for x in releases}
            )
            if dependencies != wanted:
                problems.append(
                    f"{r.urn} (wave step {steps[index]}): depends on {sorted(dependencies)}, "
                    f"not on the {len(wanted)} resources of the step before"
                )
    return problems


def assert_none(problems: Problems) -> None:
    assert not problems, "\n".join(problems)


# --- the program, every stack, both modes --------------------------------------------------------


def config_of(env: str, gitops_mode: bool) -> EnvConfig:
    return changed(load(env), {"delivery.gitops": gitops_mode})


def mocked_cloud_outputs(cfg: EnvConfig) -> dict[str, str]:
    """The values the mocks give the cloud resources of an ``eks`` stack, by stack output."""
    name = f"cap-verifier-{cfg.env}"
    bucket = f"{name}-backups-0123abcd"
    prefix = cfg.database.backup.prefix if cfg.database else ""
    return {
        "cluster_name": name,
        "oidc_issuer": f"https://oidc.eks.{REGION}.amazonaws.com/id/{name.upper()}",
        "backup_bucket": bucket,
        "backup_destination": f"s3://{bucket}/{prefix}",
        "repository_url": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{name}",
        "logs_bucket": f"{name}-logs-0123abcd",
        **{role: f"arn:aws:iam::{ACCOUNT}:role/{name}-{role.split('_')[0]}" for role in ROLES},
    }


ROLES = ("secrets_role_arn", "backup_role_arn", "playbooks_role_arn", "logs_role_arn")


def as_provisioned(cfg: EnvConfig) -> EnvConfig:
    """``cfg`` as the Kubernetes part of the program sees it: with ``eks``, the role ARNs, the
    backup destination and the image repository of the cloud resources (mocked)."""
    if cfg.cluster.provider != "eks":
        return cfg
    outputs = mocked_cloud_outputs(cfg)
    return changed(cfg, {CLOUD_KEYS[name]: outputs[name] for name in applicable(cfg)})


def stack_outputs() -> dict[str, Any]:
    """What the program exported with ``pulumi.export``."""
    root = pulumi.runtime.get_root_resource()
    assert root is not None
    return dict(getattr(root, "outputs", {}))


@ENVS
@MODES
@pulumi_test
def test_program_policies(
    stack: Callable[..., Run], env: str, gitops_mode: bool, artefacts: Artefacts
) -> Any:
    """One run per stack and mode (a run costs ~0.3 s), every program policy over it."""
    run = stack(env, {"delivery.gitops": gitops_mode})
    main()
    cfg = as_provisioned(config_of(env, gitops_mode))
    eks = cfg.cluster.provider == "eks"
    outputs = stack_outputs()

    def check(registrations: list[Registration], outputs: dict[str, Any]) -> None:
        if gitops_mode:
            # Only Argo CD and its bootstrap objects; Argo CD deploys the rest from deploy/<env>/.
            assert_none(objects_match(registrations, gitops.bootstrap(cfg, artefacts)))
            assert_none(releases_match(registrations, [for_env(ARGOCD, cfg)]))
        else:
            assert_none(objects_match(registrations, model(cfg, artefacts)))
            charts = [for_env(c, cfg) for c in PLATFORM_CHARTS]  # Loki's bucket: the outputs'
            assert_none(releases_match(registrations, charts))
        assert_none(parented(registrations))
        # eks: the provider on the cluster's kubeconfig (a secret), no context
        assert_none(on_provider(registrations, None if eks else cfg.cluster.kube_context))
        provider = next(r for r in registrations if r.type == PROVIDER)
        assert ("kubeconfig" in provider.inputs) == eks, provider.inputs
        assert_none(ordered(registrations))
        # Not vacuous: several objects, each waiting for something.
        objects = kubernetes_objects(registrations)
        assert objects, "no Kubernetes objects registered"
        assert all(r.dependencies for r in objects), [r.urn for r in objects if not r.dependencies]
        outputs = dict(outputs)
        kubeconfig = outputs.pop("kubeconfig", None)
        assert (kubeconfig is not None) == eks
        if eks:
            assert json.loads(kubeconfig)["clusters"][0]["name"] == f"cap-verifier-{env}"
        assert outputs == {
            "mode": "gitops" if gitops_mode else "direct",
            "namespace": cfg.namespace,
            "host": cfg.host,
            "url": f"https://{cfg.host}/",
            **(mocked_cloud_outputs(cfg) if eks else {}),
        }, outputs

    # The exported values resolved first (the cloud outputs are Outputs), then the policies.
    return pulumi.Output.all(**outputs).apply(
        lambda values: run.check(lambda registrations: check(registrations, values))
    )


@ENVS
@pulumi_test
def test_stack_config_decodes_cli_strings_like_the_yaml_file(
    stack: Callable[..., Run], env: str
) -> None:
    run = stack(env)
    # '1.29' stays a string; true, 2, [...] and {...} are decoded: the same config as load().
    assert stack_config() == load(env)
    assert run.constructed == []


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ('{"k8s_version_oldest": "1.30"}', {"k8s_version_oldest": "1.30"}),  # never 1.3
        ('["*.example.com"]', ["*.example.com"]),
        ("3", "3"),  # a scalar stays text; msgspec converts it by the field's type
        ("true", "true"),
        ("{not json", "{not json"),  # left for the validator's one-line error
    ],
)
def test_cli_values_decode_sections_from_json(raw: str, value: Any) -> None:
    assert decode(raw) == value


@pulumi_test
def test_runs_like_the_pulumi_language_host(stack: Callable[..., Run], artefacts: Artefacts) -> Any:
    """``runpy.run_path("infra/", run_name="__main__")``, as pulumi-language-python-exec does."""
    run = stack("dev")
    runpy.run_path(str(ROOT / "infra"), run_name="__main__")
    cfg = load("dev")

    def check(registrations: list[Registration]) -> None:
        assert_none(objects_match(registrations, model(cfg, artefacts)))
        assert stack_outputs()["mode"] == "direct"

    return run.check(check)


@pulumi_test
def test_a_later_wave_waits_for_the_wave_before(stack: Callable[..., Run]) -> Any:
    def manifest(kind: str, name: str, wave: int, **more: Any) -> dict[str, Any]:
        meta = {"name": name, "annotations": {WAVE_ANNOTATION: str(wave)}}
        if kind != "Namespace":
            meta["namespace"] = "n"
        return {"apiVersion": "v1", "kind": kind, "metadata": meta, **more}

    run = stack("dev")
    objects = KubernetesObjects(
        "waves",
        KubernetesObjectsArgs(
            manifests=[
                manifest("Service", "svc", 2, spec={"ports": [{"port": 80}]}),
                manifest("ConfigMap", "config", 1, data={"a": "b"}),
                manifest("Secret", "secret", 1, stringData={"k": "v"}),
                manifest("Namespace", "n", 0),
            ]
        ),
    )

    def check(registrations: list[Registration]) -> None:
        by_name = {r.name: r for r in registrations}
        namespace, config = by_name["waves-namespace-n"], by_name["waves-configmap-n/config"]
        secret, service = by_name["waves-secret-n/secret"], by_name["waves-service-n/svc"]
        assert namespace.dependencies == (), namespace.urn
        assert set(config.dependencies) == {namespace.urn}, config.urn
        assert set(service.dependencies) == {config.urn, secret.urn}, service.urn
        assert service.inputs["spec"] == {"ports": [{"port": 80}]}, service.urn
        assert secret.inputs["stringData"] == {"k": "v"}, secret.urn  # unwrapped secret
        assert [len(step) for step in objects.steps] == [1, 2, 1]
        assert ordered(registrations) == []

    return run.check(check)


# --- the policies catch bad programs -------------------------------------------------------------


@pulumi_test
def test_policies_catch_bad_programs(stack: Callable[..., Run], artefacts: Artefacts) -> Any:
    run = stack("dev")
    cfg = config_of("dev", False)
    build(cfg, artefacts)
    k8s.core.v1.ConfigMap("stray", metadata={"name": "stray", "namespace": "default"})

    def check(registrations: list[Registration]) -> None:
        stray = next(r.urn for r in registrations if r.name == "stray")
        # a resource outside any component, on the default provider, not in the model
        assert parented(registrations) == [f"{stray}: top-level resource outside any component"]
        assert [p for p in on_provider(registrations, cfg.cluster.kube_context) if stray in p]
        assert any("context" in p for p in on_provider(registrations, "another-context"))
        manifests = model(cfg, artefacts)
        assert objects_match(registrations, manifests) == [f"{stray}: not in the manifests"]
        # changed content, a missing object, a chart at another version
        changed = json.loads(json.dumps(manifests))
        changed[0]["metadata"]["labels"]["extra"] = "x"
        assert any("inputs differ" in p for p in objects_match(registrations, changed))
        missing = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
        assert any("not registered" in p for p in objects_match(registrations, [missing]))
        wrong_chart = dataclasses.replace(PLATFORM_CHARTS[0], version="0.0.1")
        assert releases_match(registrations, [wrong_chart, *PLATFORM_CHARTS[1:]])
        # no ordering at all
        in_model = [r for r in kubernetes_objects(registrations) if r.name != "stray"]
        unordered = [dataclasses.replace(r, dependencies=()) for r in registrations]
        assert len(ordered(unordered)) >= len(in_model)

    return run.check(check)


# --- bad input fails before any resource exists --------------------------------------------------


@pytest.mark.parametrize(
    ("env", "changes", "expected"),
    [
        (
            "staging",
            {"scaling.hpa.max_replicas": 1},
            "Pulumi.staging.yaml: cap-verifier-ops:scaling.hpa.max_replicas: "
            "expected an integer >= min_replicas",
        ),
        ("dev", {"edge.host": None}, "Pulumi.dev.yaml: cap-verifier-ops:edge.host: required key"),
        (
            "prod",
            {"delivery.gitops": "yes"},
            "Pulumi.prod.yaml: cap-verifier-ops:delivery.gitops: Expected `bool`",
        ),
    ],
)
@pulumi_test
def test_bad_config_fails_in_one_line_before_any_resource(
    stack: Callable[..., Run], env: str, changes: dict[str, Any], expected: str
) -> None:
    run = stack(env, changes)
    with pytest.raises(ConfigError) as raised:
        main()
    assert str(raised.value).startswith(expected), str(raised.value)
    assert "\n" not in str(raised.value)
    assert run.constructed == []


BAD_MANIFESTS = {
    "unknown core kind": (
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"}},
        "no resource class for built-in kind Pod",
    ),
    "unknown field": (
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "dta": {}},
        "not fields of ConfigMap: ['dta']",
    ),
    "custom resource field": (
        {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}, "data": {}},
        "a custom resource takes only metadata and spec",
    ),
    "bad wave": (
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "annotations": {WAVE_ANNOTATION: "first"}},
        },
        "must be an integer string",
    ),
    "no name": ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}, "metadata.name"),
    "listed twice": (
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok", "namespace": "n"}},
        "listed twice",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
@pulumi_test
def test_bad_manifest_fails_before_any_resource(stack: Callable[..., Run], case: str) -> None:
    run = stack("dev")
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok", "namespace": "n"}}
    manifest, expected = BAD_MANIFESTS[case]
    with pytest.raises(ValueError, match=re.escape(expected)):
        KubernetesObjects("bad", KubernetesObjectsArgs(manifests=[good, manifest]))
    assert run.constructed == []


BAD_COMPONENTS: dict[str, tuple[Callable[[], object], str]] = {
    "bootstrap with a core object": (
        lambda: GitOpsBootstrap(
            "bad",
            GitOpsBootstrapArgs(
                argocd=ARGOCD,
                manifests=[{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}],
            ),
        ),
        "Argo CD custom resources only",
    ),
    "chart listed twice": (
        lambda: PlatformCharts("bad", PlatformChartsArgs(charts=[ARGOCD, ARGOCD])),
        "charts listed twice: ['argo-cd']",
    ),
    "no timeout": (
        lambda: PlatformCharts("bad", PlatformChartsArgs(charts=[ARGOCD], timeout_seconds=0)),
        "timeout_seconds must be positive",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_COMPONENTS))
@pulumi_test
def test_bad_component_arguments_fail_before_any_resource(
    stack: Callable[..., Run], case: str
) -> None:
    run = stack("dev")
    create, expected = BAD_COMPONENTS[case]
    with pytest.raises(ValueError, match=re.escape(expected)):
        create()
    assert run.constructed == []
