"""The central logging stack (issue 14): Loki's values per environment, Alloy's pipeline and
Argo CD's deployment records, each checked by a function that a deliberately bad input fails.

Every expected fact comes from :mod:`cap_ops.log_store` or the stack config, never retyped.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from config_edits import changed
from infra.charts import ALLOY, ARGOCD, LOKI, for_env
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


@pytest.mark.orr("3.4-07")
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_alloy_ships_every_pod_to_loki_with_only_the_bounded_labels(
    configs: dict[str, EnvConfig], env: str
) -> None:
    values = application_values(configs[env], ALLOY.name)
    config = parse(values["alloy"]["configMap"]["content"])
    assert stream_labels(config) == []
    # Discovered pods, tailed, processed, written to Loki's push API.
    assert component(config, "discovery.kubernetes")["attributes"] == {"role": "pod"}
    source = component(config, "loki.source.kubernetes")["attributes"]
    assert source["forward_to"] == [("ref", "loki.process.pods.receiver")]
    (endpoint,) = component(config, "loki.write")["blocks"]
    assert endpoint[2]["attributes"]["url"] == loki.PUSH_URL
    # The rendering is the data: parsed back, the same blocks.
    assert [n for n, _, _ in config["blocks"]] == [b.name for b in alloy.pipeline()]


BAD_PIPELINES: dict[str, Callable[[list[alloy.Block]], list[alloy.Block]]] = {
    "a request_id label": lambda blocks: [
        b
        if b.name != "loki.process"
        else alloy.Block(
            b.name,
            b.label,
            b.attributes,
            [
                alloy.Block("stage.json", attributes={"expressions": {"request_id": ""}}),
                alloy.Block("stage.labels", attributes={"values": {"request_id": ""}}),
                *b.blocks,
            ],
        )
        for b in blocks
    ],
    "no JSON stage": lambda blocks: [
        b
        if b.name != "loki.process"
        else alloy.Block(
            b.name, b.label, b.attributes, [s for s in b.blocks if s.name != "stage.json"]
        )
        for b in blocks
    ],
    "a pod name label": lambda blocks: [
        b
        if b.name != "discovery.relabel"
        else alloy.Block(
            b.name,
            b.label,
            b.attributes,
            [
                *b.blocks,
                alloy.Block(
                    "rule",
                    attributes={
                        "source_labels": ["__meta_kubernetes_pod_name"],
                        "target_label": "pod",
                    },
                ),
            ],
        )
        for b in blocks
    ],
}


@pytest.mark.parametrize("bad", sorted(BAD_PIPELINES))
def test_an_unbounded_label_or_a_missing_json_stage_is_caught(bad: str) -> None:
    config = parse(alloy.render(BAD_PIPELINES[bad](alloy.pipeline())))
    assert stream_labels(config)


# --- Loki ---------------------------------------------------------------------------------------


def retention_problems(values: Values) -> list[str]:
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
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_loki_keeps_logs_90_days_enforced_by_the_compactor(
    configs: dict[str, EnvConfig], env: str
) -> None:
    values = application_values(configs[env], LOKI.name)
    assert log_store.RETENTION_HOURS == 2160
    assert retention_problems(values) == []


@pytest.mark.parametrize(
    "edit",
    [
        lambda v: v["loki"]["limits_config"].update(retention_period="720h"),
        lambda v: v["loki"]["compactor"].update(retention_enabled=False),
        lambda v: v["loki"]["compactor"].pop("delete_request_store"),
    ],
    ids=["720h", "compactor-off", "no-delete-store"],
)
def test_a_shorter_or_unenforced_retention_is_caught(
    configs: dict[str, EnvConfig], edit: Callable[[Values], None]
) -> None:
    values = copy.deepcopy(application_values(configs["prod"], LOKI.name))
    edit(values)
    assert retention_problems(values)


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


@pytest.mark.orr("3.4-07")
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_loki_mode_and_storage_per_environment(configs: dict[str, EnvConfig], env: str) -> None:
    cfg = configs[env]
    assert storage_problems(cfg, application_values(cfg, LOKI.name)) == []


def test_filesystem_in_prod_is_caught(configs: dict[str, EnvConfig]) -> None:
    prod = configs["prod"]
    values = copy.deepcopy(application_values(prod, LOKI.name))
    values["loki"]["storage"] = {"type": "filesystem"}
    assert storage_problems(prod, values)
    with pytest.raises((ConfigError, ValueError), match=r"single-binary|logging\.mode"):
        changed(prod, {"logging.mode": "single-binary"})


# --- Grafana and Argo CD -------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_loki_is_a_grafana_datasource_with_a_fixed_uid(
    configs: dict[str, EnvConfig], env: str
) -> None:
    values = application_values(configs[env], "kube-prometheus-stack")
    (source,) = [s for s in values["grafana"]["additionalDataSources"] if s["type"] == "loki"]
    assert source["uid"] == log_store.DATASOURCE_UID
    assert source["url"] == loki.GATEWAY_URL


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


@pytest.mark.orr("7.2-04")
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_sync_and_degradation_is_recorded_in_loki_with_its_author(
    configs: dict[str, EnvConfig], env: str
) -> None:
    cfg = configs[env]
    values = for_env(ARGOCD, cfg).values
    assert notification_problems(cfg, dict(values)) == []
    # The record is a push request whose line is JSON (the template's dict, encoded twice).
    (event,) = [e for e in notifications.EVENTS if e.trigger == "on-sync-succeeded"]
    assert notifications.body(event).endswith("| toJson | toJson }}]]}]}")


@pytest.mark.parametrize(
    "edit",
    [
        lambda v: v["notifications"].update(subscriptions=[]),
        lambda v: v["notifications"]["triggers"].pop("trigger.on-sync-failed"),
        lambda v: v["notifications"]["templates"].update(
            {"template.app-sync-succeeded": json.dumps({"webhook": {"loki": {"path": "/x"}}})}
        ),
        lambda v: v["notifications"]["context"].update(environment="elsewhere"),
    ],
    ids=["unsubscribed", "no-failed-trigger", "no-author", "wrong-environment"],
)
def test_a_missing_record_is_caught(
    configs: dict[str, EnvConfig], edit: Callable[[Values], None]
) -> None:
    values = copy.deepcopy(dict(for_env(ARGOCD, configs["prod"]).values))
    edit(values)
    assert notification_problems(configs["prod"], values)
