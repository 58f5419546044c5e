"""Grafana Alloy's pipeline, as data rendered to Alloy's configuration syntax.

Pods are discovered through the Kubernetes API and tailed through it
(``loki.source.kubernetes``: no host path, no root; the replicas share the targets as a
cluster). ``loki.process`` parses each JSON line, lifts ``level`` to a label only when it is one
of :data:`cap_ops.log_store.LEVELS`, and keeps exactly :data:`cap_ops.log_store.STREAM_LABELS`:
the request id and every other field stay in the line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from cap_ops import log_store
from infra.logs import loki

REPLICAS = 2


@dataclass(frozen=True)
class Ref:
    """An expression written as is (another component's export)."""

    expression: str


Value: TypeAlias = str | int | bool | Ref | Sequence["Value"] | Mapping[str, "Value"]


@dataclass(frozen=True)
class Block:
    """``name "label" { attribute = value ... nested blocks }``."""

    name: str
    label: str | None = None
    attributes: Mapping[str, Value] = field(default_factory=dict)
    blocks: Sequence[Block] = ()


POD_LABELS: dict[str, str] = {
    "namespace": "__meta_kubernetes_namespace",
    "app": "__meta_kubernetes_pod_label_app_kubernetes_io_name",
    "container": "__meta_kubernetes_pod_container_name",
}
"""The stream labels Kubernetes gives, by the discovery label each comes from."""
LINE_LABELS = ("level",)
"""The stream labels the JSON line gives."""


def _levels_only() -> Block:
    """Drop ``level`` when it is not one of the service's five (any other app's value)."""
    levels = "|".join(log_store.LEVELS)
    # A stream selector needs one matcher that does not match the empty value.
    selector = f'{{container=~".+", level!~"{levels}"}}'
    return Block(
        "stage.match",
        attributes={"selector": selector},
        blocks=[Block("stage.label_drop", attributes={"values": list(LINE_LABELS)})],
    )


def pipeline() -> list[Block]:
    """The components, from discovery to Loki's push API."""
    return [
        Block("discovery.kubernetes", "pods", {"role": "pod"}),
        Block(
            "discovery.relabel",
            "pods",
            {"targets": Ref("discovery.kubernetes.pods.targets")},
            [
                Block("rule", attributes={"source_labels": [meta], "target_label": label})
                for label, meta in POD_LABELS.items()
            ],
        ),
        Block(
            "loki.source.kubernetes",
            "pods",
            {
                "targets": Ref("discovery.relabel.pods.output"),
                "forward_to": [Ref("loki.process.pods.receiver")],
            },
            [Block("clustering", attributes={"enabled": True})],
        ),
        Block(
            "loki.process",
            "pods",
            {"forward_to": [Ref("loki.write.loki.receiver")]},
            [
                Block("stage.json", attributes={"expressions": {k: k for k in LINE_LABELS}}),
                Block("stage.labels", attributes={"values": dict.fromkeys(LINE_LABELS, "")}),
                _levels_only(),
                Block("stage.label_keep", attributes={"values": list(log_store.STREAM_LABELS)}),
            ],
        ),
        Block(
            "loki.write",
            "loki",
            blocks=[Block("endpoint", attributes={"url": loki.PUSH_URL})],
        ),
    ]


def _value(value: Value, indent: str) -> str:
    if isinstance(value, Ref):
        return value.expression
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # Alloy's strings take JSON's escapes
    if isinstance(value, Mapping):
        inner = indent + "  "
        items = "".join(f"{inner}{k} = {_value(v, inner)},\n" for k, v in value.items())
        return "{\n" + items + indent + "}"
    return "[" + ", ".join(_value(v, indent) for v in value) + "]"


def _block(block: Block, indent: str = "") -> str:
    head = block.name + (f" {json.dumps(block.label)}" if block.label is not None else "")
    inner = indent + "  "
    body = [f"{inner}{k} = {_value(v, inner)}\n" for k, v in block.attributes.items()]
    body += [_block(b, inner) for b in block.blocks]
    return f"{indent}{head} {{\n{''.join(body)}{indent}}}\n"


def render(blocks: Sequence[Block]) -> str:
    """The configuration file's text."""
    return "\n".join(_block(b) for b in blocks)


def values() -> dict[str, Any]:
    """The chart's values: a clustered Deployment running :func:`pipeline`."""
    return {
        "crds": {"create": False},
        "alloy": {
            "configMap": {"create": True, "content": render(pipeline())},
            "clustering": {"enabled": True},
        },
        "controller": {"type": "deployment", "replicas": REPLICAS},
    }
