"""The configuration files of the local environment, generated from its layout.

The verifier gets the same configuration as prod (log level INFO, TLS 1.3, the contract's
cache and JWKS settings); Prometheus loads copies of every rule file of `alerts/` (tests may
shorten an alert's ``for`` in them) and the rules of `.local/prometheus/extra/`, and probes
/healthz through the blackbox exporter as `alerts/config.yaml` says; Alertmanager keeps
`alerts/alertmanager.yml` as it is (routing, receivers, templates, time intervals) with only the
destinations rewritten: every PagerDuty, Opsgenie and Slack call goes to the local pager sink
over TLS, with test-fixture keys.
"""

from __future__ import annotations

import configparser
import io
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from cap_ops import durations, monitoring
from cap_ops.localenv import pager_sink
from cap_ops.localenv.layout import HOST, Layout
from cap_ops.localenv.pki import PKIFiles
from cap_ops.localenv.preflight import Problem
from cap_verifier import paths
from cap_verifier.typed_yaml import ConfigError

AUDIENCE = "cap-verifier"
SCRAPE_INTERVAL = "5s"  # the clusters scrape every 30 s (ORR); locally faster feedback
PROGRAM_ORDER = (
    "pager-sink",
    "alertmanager",
    "blackbox-exporter",
    "prometheus",
    "cap-dev-idp",
    "cap-verifier",
)
PROBE_TIMEOUT = "5s"
LOCAL_TIMING = {"group_wait": "5s", "group_interval": "10s"}
"""Locally, how long Alertmanager waits before a new group's first notification and how often
it sends a group's changes (a resolve), at most: a page and its resolve reach the sink within
seconds. The clusters keep the routing tree's own (10-30 s and minutes)."""
# Alertmanager settings that name a file holding a key or a webhook URL: locally each points
# at a test-fixture file of the same name in .local/alertmanager/secrets/.
SECRET_FILE_KEYS = (
    "routing_key_file",
    "service_key_file",
    "api_key_file",
    "api_url_file",
    "slack_api_url_file",
    "opsgenie_api_key_file",
)
URL_FILE_KEYS = ("api_url_file", "slack_api_url_file")


def dump_yaml(data: Any) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def idp_config(layout: Layout, pki: PKIFiles) -> dict[str, Any]:
    return {
        "issuer": layout.url("cap-dev-idp"),
        "audience": AUDIENCE,
        "token_lifetime_seconds": 300,
        "clients_file": str(layout.idp_dir / "clients.yaml"),
        "keys_dir": str(layout.idp_keys_dir),
        "server": {
            "host": HOST,
            "port": layout.ports.idp,
            "cert": str(pki.server_cert),
            "key": str(pki.server_key),
        },
    }


def verifier_config(layout: Layout, pki: PKIFiles) -> dict[str, Any]:
    idp = layout.url("cap-dev-idp")
    return {
        "server": {"host": HOST, "port": layout.ports.verifier, "workers": 2},
        "tls": {
            "enabled": True,
            "cert": str(pki.server_cert),
            "key": str(pki.server_key),
            "client_ca": str(pki.ca_cert),
            "require_mtls": False,
        },
        "oauth2": {
            "issuer": idp,
            "audience": AUDIENCE,
            "jwks_url": f"{idp}/.well-known/jwks.json",
            "jwks_ca_file": str(pki.ca_cert),
        },
        "registry": {"url": layout.registry_url},
        "logging": {"level": "INFO"},
    }


def monitoring_table(layout: Layout) -> monitoring.Monitoring:
    """The monitoring table of the rules in use (``LOCAL_ALERTS_DIR`` may bring its own)."""
    own = layout.alerts_dir / "config.yaml"
    try:
        return monitoring.load(own if own.exists() else monitoring.CONFIG)
    except ConfigError as exc:
        raise Problem(str(exc)) from None


def probe_target(layout: Layout) -> str:
    """What the black-box probe requests: the verifier's /healthz on its TLS port."""
    return f"{layout.url('cap-verifier')}{paths.HEALTHZ}"


def probe_scrape_job(layout: Layout, table: monitoring.Monitoring) -> dict[str, Any]:
    """The probe as the clusters run it: the target passed to the exporter's /probe (locally
    as often as the other scrapes, when the table's interval is longer)."""
    interval = min(table.probe.interval, SCRAPE_INTERVAL, key=durations.seconds)
    return {
        "job_name": table.probe.job,
        "scrape_interval": interval,
        "metrics_path": "/probe",
        "params": {"module": [table.probe.module]},
        "static_configs": [{"targets": [probe_target(layout)]}],
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": f"{HOST}:{layout.ports.blackbox}"},
        ],
    }


def blackbox_config(pki: PKIFiles, table: monitoring.Monitoring) -> dict[str, Any]:
    """The probe module of `alerts/config.yaml`: HTTPS only, 200 only, verified by the CA."""
    module = {
        "prober": "http",
        "timeout": PROBE_TIMEOUT,
        "http": {
            "method": "GET",
            "valid_status_codes": [200],
            "fail_if_not_ssl": True,
            "preferred_ip_protocol": "ip4",
            "ip_protocol_fallback": False,
            "tls_config": {"ca_file": str(pki.ca_cert), "insecure_skip_verify": False},
        },
    }
    return {"modules": {table.probe.module: module}}


def prometheus_config(layout: Layout, pki: PKIFiles) -> dict[str, Any]:
    table = monitoring_table(layout)
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "evaluation_interval": SCRAPE_INTERVAL,
            "external_labels": {"env": "local"},
        },
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [f"{HOST}:{layout.ports.alertmanager}"]}]}
            ]
        },
        "rule_files": [
            str(layout.prometheus_rules / "*.rules.yaml"),
            str(layout.prometheus_extra_rules / "*.rules.yaml"),
        ],
        "scrape_configs": [
            {
                "job_name": table.job,
                "scheme": "https",
                "tls_config": {"ca_file": str(pki.ca_cert)},
                "static_configs": [{"targets": [f"{HOST}:{layout.ports.verifier}"]}],
            },
            probe_scrape_job(layout, table),
        ],
    }


def rule_files(layout: Layout, for_overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """File name -> text of the rule files Prometheus loads: every `alerts/*.rules.yaml` as it
    is; with ``for_overrides`` (tests only) the ``for`` of the named alerts replaced, the rest
    of those files unchanged. An unknown alert name is a :class:`Problem`."""
    overrides = dict(for_overrides or {})
    rendered: dict[str, str] = {}
    for path in sorted(layout.alerts_dir.glob("*.rules.yaml")):
        text = path.read_text(encoding="utf-8")
        document = YAML(typ="safe", pure=True).load(text)
        rules = [r for g in document.get("groups", []) for r in g.get("rules", [])]
        touched = [r for r in rules if r.get("alert") in overrides]
        for rule in touched:
            rule["for"] = overrides[rule["alert"]]
        rendered[path.name] = dump_yaml(document) if touched else text
        found = {r["alert"] for r in touched}
        overrides = {name: value for name, value in overrides.items() if name not in found}
    if overrides:
        raise Problem(f"no alert {', '.join(sorted(overrides))} in {layout.alerts_dir}")
    return rendered


def alertmanager_source(layout: Layout) -> dict[str, Any]:
    source = YAML(typ="safe", pure=True).load(
        (layout.alerts_dir / "alertmanager.yml").read_text(encoding="utf-8")
    )
    if not isinstance(source, dict):
        raise Problem(f"{layout.alerts_dir / 'alertmanager.yml'}: not a mapping")
    return source


def _secret_file(layout: Layout, path: str) -> str:
    return str(layout.alertmanager_secrets / Path(path).name)


def _to_sink(layout: Layout, pki: PKIFiles, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """One integration of a receiver, sent to the pager sink; everything else kept."""
    sink = layout.url("pager-sink")
    out = dict(config)
    if kind == "pagerduty_configs":
        out["url"] = f"{sink}{pager_sink.PAGERDUTY_PATH}"
    elif kind == "opsgenie_configs":
        out["api_url"] = f"{sink}/"
    elif kind == "slack_configs":
        if "api_url" in out:
            out["api_url"] = slack_webhook_url(layout, "api_url")
    else:
        raise Problem(
            f"alertmanager.yml: {kind} has no local sink (PagerDuty, Opsgenie and Slack have)"
        )
    for key in SECRET_FILE_KEYS:
        if key in out:
            out[key] = _secret_file(layout, out[key])
    http = dict(out.get("http_config") or {})
    http["tls_config"] = {**(http.get("tls_config") or {}), "ca_file": str(pki.ca_cert)}
    out["http_config"] = http
    return out


def alertmanager_config(layout: Layout, pki: PKIFiles) -> dict[str, Any]:
    """`alerts/alertmanager.yml` as it is, every destination rewritten to the pager sink and
    the group intervals shortened (:func:`_local_timing`)."""
    source = alertmanager_source(layout)
    settings = dict(source.get("global") or {})
    for key in SECRET_FILE_KEYS:
        if key in settings:
            settings[key] = _secret_file(layout, settings[key])
    if settings:
        source["global"] = settings
    receivers = []
    for receiver in source.get("receivers", []):
        rewritten = dict(receiver)
        for kind, integrations in receiver.items():
            if kind != "name":
                rewritten[kind] = [_to_sink(layout, pki, kind, c) for c in integrations]
        receivers.append(rewritten)
    source["receivers"] = receivers
    source["route"] = _local_timing(dict(source.get("route") or {}), root=True)
    return source


def _local_timing(route: dict[str, Any], root: bool = False) -> dict[str, Any]:
    """The route with its timings (and its sub-routes') at most :data:`LOCAL_TIMING`. The root
    gets them even when it relies on Alertmanager's defaults (30s, 5m)."""
    for key, local in LOCAL_TIMING.items():
        if root or key in route:
            route[key] = min(route.get(key, local), local, key=durations.seconds)
    if "routes" in route:
        route["routes"] = [_local_timing(dict(child)) for child in route["routes"]]
    return route


def slack_webhook_url(layout: Layout, name: str) -> str:
    """A webhook URL on the pager sink, its token a test fixture named after ``name``."""
    token = f"TEST-FIXTURE/not-a-real-webhook/{name}"
    return f"{layout.url('pager-sink')}{pager_sink.SLACK_PREFIX}{token}"


def _secret_names(node: Any, found: dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in SECRET_FILE_KEYS and isinstance(value, str):
                found[Path(value).name] = key
            else:
                _secret_names(value, found)
    elif isinstance(node, list):
        for item in node:
            _secret_names(item, found)


def alertmanager_secrets(layout: Layout) -> dict[str, str]:
    """File name -> content of every key file `alerts/alertmanager.yml` names: test fixtures,
    named as such (a Slack file holds a webhook URL on the pager sink). No trailing newline:
    Alertmanager 0.25 sends an Opsgenie key file's content as it is, newline included."""
    found: dict[str, str] = {}
    _secret_names(alertmanager_source(layout), found)
    return {
        name: (
            slack_webhook_url(layout, name)
            if key in URL_FILE_KEYS
            else f"TEST-FIXTURE-{name}-local-only-not-a-real-key"
        )
        for name, key in sorted(found.items())
    }


@dataclass(frozen=True)
class LogRotation:
    """How supervisord rotates a program's log under ``.local/logs/``: by size, keeping
    ``backups`` older files (``x.log.1`` … ``x.log.<backups>``); ``make logs`` reads them all."""

    max_bytes: int
    backups: int


LOG_ROTATION = LogRotation(max_bytes=10 * 1024 * 1024, backups=5)
"""60 MiB of lines per program at most: days of local use, and bounded."""


def program_section(
    layout: Layout,
    command: list[str],
    priority: int,
    stop_wait: int = 35,
    rotation: LogRotation = LOG_ROTATION,
) -> dict[str, str]:
    """One ``[program:x]`` section: started by ``make up`` in order, its output logged, rotated."""
    section = {
        "command": shlex.join(command),
        "directory": str(layout.local),
        "autostart": "false",  # started in order by `make up`, each once the one before is up
        "autorestart": "unexpected",
        "startsecs": "2",
        "startretries": "3",
        "stopsignal": "TERM",
        "stopwaitsecs": str(stop_wait),
        "stopasgroup": "true",
        "killasgroup": "true",
        "redirect_stderr": "true",
        "stdout_logfile_maxbytes": str(rotation.max_bytes),
        "stdout_logfile_backups": str(rotation.backups),
        "priority": str(priority),
        "environment": 'PYTHONUNBUFFERED="1",TMPDIR="/tmp"',
    }
    if layout.service_user:
        section["user"] = layout.service_user
    return section


def supervisord_config(layout: Layout) -> str:
    """supervisord.conf: a unix socket only (mode 0700), every program as the service user."""
    python = str(layout.runtime_venv / "bin" / "python")
    venv_bin = layout.runtime_venv / "bin"
    programs = {
        "pager-sink": [
            python,
            "-m",
            "cap_ops.localenv.pager_sink",
            "--port",
            str(layout.ports.pager_sink),
            "--log",
            str(layout.pages_log),
            "--cert",
            str(PKIFiles.under(layout.pki).server_cert),
            "--key",
            str(PKIFiles.under(layout.pki).server_key),
        ],
        "blackbox-exporter": [
            "/usr/bin/prometheus-blackbox-exporter",
            f"--config.file={layout.blackbox_dir / 'blackbox.yml'}",
            f"--web.listen-address={HOST}:{layout.ports.blackbox}",
            "--log.format=json",
        ],
        "alertmanager": [
            "/usr/bin/prometheus-alertmanager",
            f"--config.file={layout.alertmanager_dir / 'alertmanager.yml'}",
            f"--storage.path={layout.alertmanager_dir / 'data'}",
            f"--web.listen-address={HOST}:{layout.ports.alertmanager}",
            "--cluster.listen-address=",
            "--log.format=json",
        ],
        "prometheus": [
            "/usr/bin/prometheus",
            f"--config.file={layout.prometheus_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={layout.prometheus_dir / 'data'}",
            "--storage.tsdb.retention.time=2d",
            f"--web.listen-address={HOST}:{layout.ports.prometheus}",
            "--web.enable-lifecycle",  # POST /-/reload: `make test-page` adds and removes a rule
            "--log.format=json",
        ],
        "cap-dev-idp": [
            python,
            "-m",
            "cap_dev_idp",
            "serve",
            "--config",
            str(layout.idp_config),
        ],
        "cap-verifier": [
            str(venv_bin / "cap-verifier"),
            "serve",
            "--config",
            str(layout.verifier_dir / "config.yaml"),
        ],
    }
    parser = configparser.ConfigParser(interpolation=None)
    parser["unix_http_server"] = {"file": str(layout.supervisor_socket), "chmod": "0700"}
    parser["supervisord"] = {
        "logfile": str(layout.logs / "supervisord.log"),
        "pidfile": str(layout.supervisor_pid),
        "childlogdir": str(layout.logs),
        "identifier": "cap-verifier-local",
        "nodaemon": "false",
        "silent": "true",
    }
    parser["rpcinterface:supervisor"] = {
        "supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"
    }
    parser["supervisorctl"] = {"serverurl": f"unix://{layout.supervisor_socket}"}
    for priority, name in enumerate(PROGRAM_ORDER, start=1):
        section = program_section(layout, programs[name], priority * 10)
        section["stdout_logfile"] = str(layout.logs / f"{name}.log")
        parser[f"program:{name}"] = section
    parser["include"] = {"files": str(layout.supervisor_include_dir / "*.conf")}
    out = io.StringIO()
    out.write("; generated by `make up` (tools/cap_ops/localenv); edits are overwritten\n")
    parser.write(out)
    return out.getvalue()


def write_if_changed(path: Path, text: str, mode: int = 0o640) -> bool:
    """Write ``text`` when it differs from the file; True when it changed."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        path.chmod(mode)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(mode)
    tmp.replace(path)
    return True
