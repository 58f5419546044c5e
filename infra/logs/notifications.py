"""Argo CD notifications: every sync and health change of every Application, recorded in Loki.

The notifications controller posts one line per event to Loki's push API (a webhook service);
the line is JSON (event, application, revision, author, commit message, environment, time) in
a stream whose labels are bounded values of :data:`cap_ops.log_store.STREAM_LABELS`. A default
subscription sends every trigger for every Application, so the platform Applications and the
root Application need no annotation. The author and message are read from git only for
Applications whose source is a git repository (a chart's revision is its version, and
``GetCommitMetadata`` fails on it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from infra.config import EnvConfig
from infra.logs import loki

SERVICE = "loki"
"""The webhook service's name (``service.webhook.loki``), the subscriptions' recipient."""
STREAM: dict[str, str] = {
    "namespace": "argocd",
    "app": "argocd-notifications",
    "container": "notifications-controller",
}
"""The stream labels of every record but ``level``, which is the event's."""


@dataclass(frozen=True)
class Event:
    trigger: str
    """Argo CD's trigger name (``on-sync-succeeded``)."""
    when: str
    """The trigger's condition (an expr expression over ``app``)."""
    level: str
    """The record's level, one of :data:`cap_ops.log_store.LEVELS`."""

    @property
    def template(self) -> str:
        return "app-" + self.trigger.removeprefix("on-")


EVENTS = (
    Event("on-sync-running", "app.status.operationState.phase in ['Running']", "INFO"),
    Event("on-sync-succeeded", "app.status.operationState.phase in ['Succeeded']", "INFO"),
    Event("on-sync-failed", "app.status.operationState.phase in ['Error', 'Failed']", "ERROR"),
    Event("on-health-degraded", "app.status.health.status == 'Degraded'", "WARNING"),
)

GIT_COMMIT = (
    '{{- $author := "" }}{{- $message := "" }}'
    '{{- if not (or .app.spec.source.chart (hasPrefix "oci://" .app.spec.source.repoURL)) }}'
    "{{- $commit := call .repo.GetCommitMetadata .app.status.sync.revision }}"
    "{{- $author = $commit.Author }}{{- $message = $commit.Message }}"
    "{{- end }}"
)
"""Sets ``$author`` and ``$message`` from git for a git source, empty for a chart."""


def fields(event: Event) -> dict[str, str]:
    """The record's fields, each a Go template operand."""
    return {
        "event": json.dumps(event.trigger),
        "level": json.dumps(event.level),
        "application": ".app.metadata.name",
        "revision": ".app.status.sync.revision",
        "author": "$author",
        "message": "$message",
        "environment": ".context.environment",
        "time": '((call .time.Now).Format "2006-01-02T15:04:05Z07:00")',
    }


def body(event: Event) -> str:
    """A Loki push request: one stream, one line, the record as JSON inside a JSON string."""
    pairs = " ".join(f"{json.dumps(name)} {operand}" for name, operand in fields(event).items())
    stream = json.dumps({**STREAM, "level": event.level})
    line = f"{{{{ dict {pairs} | toJson | toJson }}}}"
    nanoseconds = '"{{ (call .time.Now).UnixNano }}"'
    return (
        f'{GIT_COMMIT}{{"streams": [{{"stream": {stream}, "values": [[{nanoseconds}, {line}]]}}]}}'
    )


def values(cfg: EnvConfig) -> dict[str, Any]:
    """The argo-cd chart's ``notifications`` values (each entry a YAML document; JSON is one)."""
    return {
        "enabled": True,
        "context": {"environment": cfg.env},
        "notifiers": {
            f"service.webhook.{SERVICE}": json.dumps(
                {
                    "url": loki.GATEWAY_URL,
                    "headers": [{"name": "Content-Type", "value": "application/json"}],
                }
            )
        },
        "triggers": {
            f"trigger.{e.trigger}": json.dumps(
                [{"description": e.trigger, "send": [e.template], "when": e.when}]
            )
            for e in EVENTS
        },
        "templates": {
            f"template.{e.template}": json.dumps(
                {"webhook": {SERVICE: {"method": "POST", "path": loki.PUSH_PATH, "body": body(e)}}}
            )
            for e in EVENTS
        },
        "subscriptions": [{"recipients": [SERVICE], "triggers": [e.trigger for e in EVENTS]}],
    }
