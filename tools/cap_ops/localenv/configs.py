"""The configuration files of the local environment, generated from its layout.

The verifier gets the same configuration as prod (log level INFO, TLS 1.3, the contract's
cache and JWKS settings); Prometheus loads every rule file of `alerts/`; Alertmanager keeps
the routing tree of `alerts/alertmanager.yml` with every receiver pointed at the local sink.
"""

from __future__ import annotations

import configparser
import io
import shlex
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from cap_ops.localenv.layout import HOST, Layout
from cap_ops.localenv.pki import PKIFiles

AUDIENCE = "cap-verifier"
SCRAPE_INTERVAL = "5s"  # the clusters scrape every 30 s (ORR); locally faster feedback
PROGRAM_ORDER = ("alert-sink", "alertmanager", "prometheus", "cap-dev-idp", "cap-verifier")


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


def prometheus_config(layout: Layout, pki: PKIFiles) -> dict[str, Any]:
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
        "rule_files": [str(layout.alerts_dir / "*.rules.yaml")],
        "scrape_configs": [
            {
                "job_name": "cap-verifier",
                "scheme": "https",
                "tls_config": {"ca_file": str(pki.ca_cert)},
                "static_configs": [{"targets": [f"{HOST}:{layout.ports.verifier}"]}],
            }
        ],
    }


def alertmanager_config(layout: Layout) -> dict[str, Any]:
    """`alerts/alertmanager.yml` with every receiver delivering to the local sink."""
    source = YAML(typ="safe", pure=True).load(
        (layout.alerts_dir / "alertmanager.yml").read_text(encoding="utf-8")
    )
    sink = f"http://{HOST}:{layout.ports.alert_sink}/alerts"
    source["receivers"] = [
        {"name": receiver["name"], "webhook_configs": [{"url": sink, "send_resolved": True}]}
        for receiver in source.get("receivers", [])
    ]
    return dict(source)


def _program(
    layout: Layout, command: list[str], priority: int, stop_wait: int = 35
) -> dict[str, str]:
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
        "stdout_logfile_maxbytes": "10MB",
        "stdout_logfile_backups": "2",
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
        "alert-sink": [
            python,
            "-m",
            "cap_ops.localenv.alert_sink",
            "--port",
            str(layout.ports.alert_sink),
            "--log",
            str(layout.alerts_log),
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
        section = _program(layout, programs[name], priority * 10)
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
