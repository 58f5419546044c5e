"""The central logging stack (issue 14): Loki's values per environment, Alloy's pipeline and
Argo CD's deployment records, each checked by a function that a deliberately bad input fails.

Every expected fact comes from :mod:`cap_ops.log_store` or the stack config, never retyped.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest
from config_edits import changed
from infra.charts import ALLOY, ARGOCD, KUBE_PROMETHEUS_STACK, LOKI, for_env
from infra.cloud import outputs
from infra.config import ENVIRONMENTS, ConfigError, EnvConfig
from infra.logs import alloy, loki, notifications

from cap_ops import log_store
from infra import gitops

Values = dict[str, Any]


def application_values(cfg: EnvConfig, name: str) -> Values:
    """The valuesObject of the rendered Application ``name`` (what Argo CD installs)."""
    (app,) = [a for a in gitops.applications(cfg) if a["metadata"]["name"] == name]
    values: Values = app["spec"]["source"]["helm"]["valuesObject"]
    return values


# --- Alloy's configuration, parsed back into blocks -----------------------------------------------

TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<word>[A-Za-z_][\w.]*)|(?P<number>\d+)|(?P<punct>[{}\[\]=,]))'
)


def tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    position = 0
    while text[position:].strip():
        match = TOKEN.match(text, position)
        assert match, f"unexpected text at {position}: {text[position : position + 30]!r}"
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match.group(kind)))
        position = match.end()
    return found


class Parser:
    """Alloy's syntax as this repository writes it: blocks, attributes, strings, numbers,
    booleans, references, lists and objects."""

    def __init__(self, text: str) -> None:
        self.tokens = tokens(text)
        self.index = 0

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.index]
        assert value is None or token[1] == value, (token, value)
        self.index += 1
        return token

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.index + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def body(self, until: str | None) -> dict[str, Any]:
        """``{"attributes": {...}, "blocks": [(name, label, body), ...]}``."""
        attributes: dict[str, Any] = {}
        blocks: list[tuple[str, str | None, dict[str, Any]]] = []
        while (token := self.peek()) is not None and token[1] != until:
            _, name = self.take()
            following = self.peek()
            assert following is not None
            if following[1] == "=":
                self.take("=")
                attributes[name] = self.value()
                continue
            label = json.loads(self.take()[1]) if following[0] == "string" else None
            self.take("{")
            blocks.append((name, label, self.body("}")))
            self.take("}")
        return {"attributes": attributes, "blocks": blocks}

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "string":
            return json.loads(text)
        if kind == "number":
            return int(text)
        if text == "[":
            items = []
            while (token := self.peek()) is not None and token[1] != "]":
                items.append(self.value())
                if (token := self.peek()) is not None and token[1] == ",":
                    self.take(",")
            self.take("]")
            return items
        if text == "{":
            items_: dict[str, Any] = {}
            while (token := self.peek()) is not None and token[1] != "}":
                key = self.take()[1]
                self.take("=")
                items_[key] = self.value()
                if (token := self.peek()) is not None and token[1] == ",":
                    self.take(",")
            self.take("}")
            return items_
        return {"true": True, "false": False}.get(text, ("ref", text))


def parse(text: str) -> dict[str, Any]:
    return Parser(text).body(None)


def component(config: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [body for n, _, body in config["blocks"] if n == name]
    assert isinstance(found, dict)
    return found


def stream_labels(config: dict[str, Any]) -> list[str]:
    """Problems of the parsed pipeline: the labels it attaches, the JSON stage, the level."""
    problems: list[str] = []
    process = component(config, "loki.process")
    stages = [(name, body) for name, _, body in process["blocks"]]
    names = [name for name, _ in stages]
    if "stage.json" not in names:
        problems.append("no stage.json: the lines are not parsed")
    keep = [body["attributes"]["values"] for name, body in stages if name == "stage.label_keep"]
    if keep != [list(log_store.STREAM_LABELS)]:
        problems.append(f"label_keep {keep}, not {list(log_store.STREAM_LABELS)}")
    if names and names[-1] != "stage.label_keep":
        problems.append("a stage after label_keep may add labels")
    relabel = component(config, "discovery.relabel")
    targets = [body["attributes"]["target_label"] for n, _, body in relabel["blocks"]]
    lifted = [
        key
        for name, body in stages
        if name == "stage.labels"
        for key in body["attributes"]["values"]
    ]
    problems += [
        f"label {label!r} outside STREAM_LABELS"
        for label in [*targets, *lifted]
        if label not in log_store.STREAM_LABELS
    ]
    return problems


def alloy_problems(cfg: EnvConfig, values: Values) -> list[str]:
    """Every pod discovered, tailed, parsed and written to Loki's push API with only the
    bounded labels (the configuration parsed back, never read as text)."""
    config = parse(values["alloy"]["configMap"]["content"])
    problems = stream_labels(config)
    if component(config, "discovery.kubernetes")["attributes"] != {"role": "pod"}:
        problems.append("pods are not discovered")
    source = component(config, "loki.source.kubernetes")["attributes"]
    if source["forward_to"] != [("ref", "loki.process.pods.receiver")]:
        problems.append(f"the tailed lines go to {source['forward_to']}")
    urls = [body["attributes"]["url"] for _, _, body in component(config, "loki.write")["blocks"]]
    if urls != [loki.PUSH_URL]:
        problems.append(f"written to {urls}, not {loki.PUSH_URL}")
    return problems


def with_pipeline(
    edit: Callable[[alloy.Block], alloy.Block],
) -> Callable[[Values], None]:
    """A bad edit of Alloy's values: ``edit`` applied to every component of the pipeline."""

    def apply(values: Values) -> None:
        blocks = [edit(b) for b in alloy.pipeline()]
        values["alloy"]["configMap"]["content"] = alloy.render(blocks)

    return apply


def with_blocks(
    name: str, blocks: Callable[[Sequence[alloy.Block]], list[alloy.Block]]
) -> Callable[[Values], None]:
    """The component ``name`` with its nested blocks replaced by ``blocks(its blocks)``."""
    return with_pipeline(lambda b: b if b.name != name else replace(b, blocks=blocks(b.blocks)))


POD_NAME_RULE = alloy.Block(
    "rule",
    attributes={"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
)
REQUEST_ID_LABEL = [
    alloy.Block("stage.json", attributes={"expressions": {"request_id": ""}}),
    alloy.Block("stage.labels", attributes={"values": {"request_id": ""}}),
]


# --- Loki ---------------------------------------------------------------------------------------


def retention_problems(cfg: EnvConfig, values: Values) -> list[str]:
    problems: list[str] = []
    wanted = f"{log_store.RETENTION_HOURS}h"
    period = values["loki"]["limits_config"].get("retention_period")
    if period != wanted:
        problems.append(f"retention_period {period}, not {wanted}")
    compactor = values["loki"]["compactor"]
    if compactor.get("retention_enabled") is not True:
        problems.append("the compactor does not enforce retention")
    store = values["loki"]["schemaConfig"]["configs"][-1]["object_store"]
    if compactor.get("delete_request_store") != store:
        problems.append(f"delete requests in {compactor.get('delete_request_store')}, not {store}")
    return problems


@pytest.mark.orr("3.4-08")
def test_the_log_store_keeps_90_days() -> None:
    """The one home of the retention every store derives from (Loki, the bucket's expiry)."""
    assert log_store.RETENTION_DAYS == 90
    assert log_store.RETENTION_HOURS == 90 * 24


def storage_problems(cfg: EnvConfig, values: Values) -> list[str]:
    """Prod and staging: simple-scalable on the bucket of the outputs file through IRSA; dev:
    one binary on its filesystem."""
    storage = values["loki"]["storage"]
    if cfg.env == "dev":
        wanted = {"deploymentMode": "SingleBinary", "type": "filesystem"}
        got = {"deploymentMode": values["deploymentMode"], "type": storage["type"]}
        return [] if got == wanted and values["singleBinary"]["replicas"] == 1 else [str(got)]
    recorded = outputs.read(cfg.env)
    problems = []
    if values["deploymentMode"] != "SimpleScalable":
        problems.append(f"deploymentMode {values['deploymentMode']}")
    if (
        storage["type"] != "s3"
        or storage.get("bucketNames", {}).get("chunks") != recorded["logs_bucket"]
    ):
        problems.append(f"storage {storage}, not the bucket {recorded['logs_bucket']}")
    account = values["serviceAccount"]
    if account.get("annotations", {}).get(loki.IRSA_ANNOTATION) != recorded["logs_role_arn"]:
        problems.append(f"service account {account}: not the role of the outputs file")
    return problems


def test_prod_refuses_a_single_binary_loki(configs: dict[str, EnvConfig]) -> None:
    with pytest.raises((ConfigError, ValueError), match=r"single-binary|logging\.mode"):
        changed(configs["prod"], {"logging.mode": "single-binary"})


# --- Grafana and Argo CD -------------------------------------------------------------------------


def datasource_problems(cfg: EnvConfig, values: Values) -> list[str]:
    """Loki is one Grafana datasource, at the fixed uid the panels name, on Loki's gateway."""
    sources = [s for s in values["grafana"]["additionalDataSources"] if s["type"] == "loki"]
    wanted = {"uid": log_store.DATASOURCE_UID, "url": loki.GATEWAY_URL}
    got = [{k: s.get(k) for k in wanted} for s in sources]
    return [] if got == [wanted] else [f"Loki datasources {got}, not [{wanted}]"]


TRIGGERS = {"on-sync-succeeded", "on-sync-failed", "on-sync-running", "on-health-degraded"}


def notification_problems(cfg: EnvConfig, values: Values) -> list[str]:
    """Every trigger sent to the Loki webhook for every Application, as a record with the
    application, revision, author, message, environment and time, in a bounded stream."""
    problems: list[str] = []
    settings = values["notifications"]
    service = json.loads(
        settings["notifiers"].get(f"service.webhook.{notifications.SERVICE}", "{}")
    )
    if service.get("url") != loki.GATEWAY_URL:
        problems.append(f"webhook {service}")
    subscribed = {
        t
        for s in settings.get("subscriptions", [])
        if notifications.SERVICE in s["recipients"] and "selector" not in s
        for t in s["triggers"]
    }
    problems += [f"{t}: not subscribed" for t in TRIGGERS - subscribed]
    if settings["context"].get("environment") != cfg.env:
        problems.append(f"environment {settings['context']}")
    for trigger in TRIGGERS:
        (rule,) = json.loads(settings["triggers"].get(f"trigger.{trigger}", "[{}]"))
        for template in rule.get("send", [None]):
            document = json.loads(settings["templates"].get(f"template.{template}", "{}"))
            hook = document.get("webhook", {}).get(notifications.SERVICE, {})
            body = hook.get("body", "")
            if hook.get("path") != loki.PUSH_PATH:
                problems.append(f"{trigger}: not Loki's push API")
            for needed in (
                ".app.metadata.name",
                ".app.status.sync.revision",
                "call .repo.GetCommitMetadata .app.status.sync.revision",
                "$commit.Author",
                "$commit.Message",
                ".context.environment",
                "call .time.Now",
            ):
                if needed not in body:
                    problems.append(f"{trigger}: the record lacks {needed}")
            stream = re.search(r'"stream": (\{[^}]*\})', body)
            labels = set(json.loads(stream.group(1))) if stream else {"?"}
            if not labels <= set(log_store.STREAM_LABELS):
                problems.append(f"{trigger}: stream labels {sorted(labels)}")
    return problems


def test_a_record_is_a_push_request_whose_line_is_json() -> None:
    """The template's dict, encoded twice: a JSON line inside the push request's JSON."""
    (event,) = [e for e in notifications.EVENTS if e.trigger == "on-sync-succeeded"]
    assert notifications.body(event).endswith("| toJson | toJson }}]]}]}")


# --- every property per environment, and the bad inputs each check catches -----------------------


def argocd_values(cfg: EnvConfig) -> Values:
    """The argo-cd chart's values of ``cfg``'s environment (Argo CD has no Application)."""
    return dict(for_env(ARGOCD, cfg).values)


def of_application(name: str) -> Callable[[EnvConfig], Values]:
    return lambda cfg: application_values(cfg, name)


@dataclass(frozen=True)
class Check:
    """One property of the logging stack: the values it reads, the function listing their
    problems, the ORR line it proves, and the deliberately bad edits that function catches."""

    values: Callable[[EnvConfig], Values]
    problems: Callable[[EnvConfig, Values], list[str]]
    orr: str | None
    bad: Mapping[str, Callable[[Values], object]]


CHECKS: dict[str, Check] = {
    "alloy-ships-pods-with-bounded-labels": Check(
        of_application(ALLOY.name),
        alloy_problems,
        "3.4-07",
        {
            "request-id-label": with_blocks("loki.process", lambda s: [*REQUEST_ID_LABEL, *s]),
            "no-json-stage": with_blocks(
                "loki.process", lambda s: [b for b in s if b.name != "stage.json"]
            ),
            "pod-name-label": with_blocks("discovery.relabel", lambda s: [*s, POD_NAME_RULE]),
            "elsewhere": with_blocks("loki.write", lambda s: []),
        },
    ),
    "loki-keeps-90-days-by-the-compactor": Check(
        of_application(LOKI.name),
        retention_problems,
        "3.4-08",
        {
            "720h": lambda v: v["loki"]["limits_config"].update(retention_period="720h"),
            "compactor-off": lambda v: v["loki"]["compactor"].update(retention_enabled=False),
            "no-delete-store": lambda v: v["loki"]["compactor"].pop("delete_request_store"),
        },
    ),
    "loki-mode-and-storage": Check(
        of_application(LOKI.name),
        storage_problems,
        "3.4-07",
        {
            "filesystem": lambda v: v["loki"].update(storage={"type": "filesystem"}),
            "no-role": lambda v: v["serviceAccount"].pop("annotations"),
        },
    ),
    "loki-is-a-grafana-datasource": Check(
        of_application(KUBE_PROMETHEUS_STACK.name),
        datasource_problems,
        None,
        {"another-uid": lambda v: v["grafana"]["additionalDataSources"][0].update(uid="x")},
    ),
    "argocd-records-every-sync-in-loki": Check(
        argocd_values,
        notification_problems,
        "7.2-04",
        {
            "unsubscribed": lambda v: v["notifications"].update(subscriptions=[]),
            "no-failed-trigger": lambda v: v["notifications"]["triggers"].pop(
                "trigger.on-sync-failed"
            ),
            "no-author": lambda v: v["notifications"]["templates"].update(
                {"template.app-sync-succeeded": json.dumps({"webhook": {"loki": {"path": "/x"}}})}
            ),
            "wrong-environment": lambda v: v["notifications"]["context"].update(
                environment="elsewhere"
            ),
        },
    ),
}


@pytest.mark.parametrize(
    ("check", "env"),
    [
        pytest.param(
            name,
            env,
            id=f"{name}-{env}",
            marks=[pytest.mark.orr(check.orr)] if check.orr else [],
        )
        for name, check in CHECKS.items()
        for env in ENVIRONMENTS
    ],
)
def test_the_logging_stack_holds(configs: dict[str, EnvConfig], check: str, env: str) -> None:
    cfg = configs[env]
    assert CHECKS[check].problems(cfg, CHECKS[check].values(cfg)) == []


@pytest.mark.parametrize(
    ("check", "bad"),
    [pytest.param(name, bad, id=f"{name}-{bad}") for name, c in CHECKS.items() for bad in c.bad],
)
def test_a_bad_input_is_caught(configs: dict[str, EnvConfig], check: str, bad: str) -> None:
    prod = configs["prod"]
    values = copy.deepcopy(CHECKS[check].values(prod))
    CHECKS[check].bad[bad](values)
    assert CHECKS[check].problems(prod, values)
