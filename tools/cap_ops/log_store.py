"""The central log store's facts, in one place: how long logs are kept, which stream labels the
collector attaches, and the LogQL that finds the service's lines.

Grafana Alloy ships every pod's log lines to Loki with the labels of :data:`STREAM_LABELS` only:
each has a small, bounded set of values. The request id, the client id and every other field
of a line stay inside the JSON body, where LogQL's ``json`` parser reads them at query time: a
label per request would create a stream per request and bring Loki's index down.

Read by the Loki and Alloy values (``infra/charts.py``), the Grafana logs panel
(``dashboards/``), the runbooks' queries and ``docs/logging.md``.
"""

from __future__ import annotations

RETENTION_DAYS = 90
"""ORR 7.1 data-retention policy for logs: 90 days, enforced by Loki's compactor."""
RETENTION_HOURS = RETENTION_DAYS * 24

STREAM_LABELS = ("namespace", "app", "container", "level")
"""The only labels a log stream carries. ``namespace``, ``app`` (the pod's
``app.kubernetes.io/name``) and ``container`` come from Kubernetes; ``level`` from the JSON line
(five values at most)."""

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""The service's log levels (Python's names), the values ``level`` may take."""

DATASOURCE_UID = "loki"
"""The uid of the Loki datasource in Grafana (kube-prometheus-stack's values), which panels name."""

REQUEST_ID_VARIABLE = "$request_id"
"""The Grafana dashboard variable a person types a request id into."""


def service_selector(namespace: str, app: str) -> str:
    """The stream selector of the service's lines in ``namespace``."""
    return f'{{namespace="{namespace}", app="{app}"}}'


def request_query(namespace: str, app: str, request_id: str = REQUEST_ID_VARIABLE) -> str:
    """Every line of one request, by the ``request_id`` field of its JSON body (never a label)."""
    return f'{service_selector(namespace, app)} | json | request_id = "{request_id}"'


def errors_query(namespace: str, app: str) -> str:
    """The service's ERROR and CRITICAL lines (``level`` is a label: no line is parsed for it)."""
    return f'{{namespace="{namespace}", app="{app}", level=~"ERROR|CRITICAL"}} | json'
