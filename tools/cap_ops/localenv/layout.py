"""Where everything of the local environment lives, and on which port."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "cap-verifier"
HOST = "127.0.0.1"
ALERTS_DIR_ENV = "LOCAL_ALERTS_DIR"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Ports:
    verifier: int = 8443
    idp: int = 9443
    prometheus: int = 9090
    alertmanager: int = 9093
    pager_sink: int = 9096
    blackbox: int = 9115

    def named(self) -> dict[str, int]:
        return {
            "cap-verifier": self.verifier,
            "cap-dev-idp": self.idp,
            "prometheus": self.prometheus,
            "alertmanager": self.alertmanager,
            "pager-sink": self.pager_sink,
            "blackbox-exporter": self.blackbox,
        }


@dataclass(frozen=True)
class Layout:
    """Paths under ``.local/`` (git-ignored) and the repository files they come from."""

    root: Path
    ports: Ports
    service_user: str | None
    """The user the programs run as; None when `make up` does not run as root."""

    @classmethod
    def default(cls) -> Layout:
        root = repo_root()
        user = SERVICE_USER if os.geteuid() == 0 else None
        return cls(root=root, ports=Ports(), service_user=user)

    @property
    def local(self) -> Path:
        return self.root / ".local"

    @property
    def pki(self) -> Path:
        return self.local / "pki"

    @property
    def ca_cert(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def idp_dir(self) -> Path:
        return self.local / "idp"

    @property
    def idp_config(self) -> Path:
        return self.idp_dir / "idp.yaml"

    @property
    def idp_keys_dir(self) -> Path:
        """The dev IdP's signing keys (``keys.json`` names the current and previous kid)."""
        return self.idp_dir / "keys"

    @property
    def verifier_dir(self) -> Path:
        return self.local / "verifier"

    @property
    def data(self) -> Path:
        return self.local / "data"

    @property
    def registry_file(self) -> Path:
        """The verifier's SQLite registry."""
        return self.data / "registry.db"

    @property
    def registry_url(self) -> str:
        return f"sqlite:///{self.registry_file}"

    @property
    def backups(self) -> Path:
        """Where ``make backup`` writes (one directory per backup, named by its UTC time)."""
        return self.local / "backups"

    @property
    def logs(self) -> Path:
        return self.local / "logs"

    @property
    def supervisor_dir(self) -> Path:
        return self.local / "supervisor"

    @property
    def supervisor_conf(self) -> Path:
        return self.supervisor_dir / "supervisord.conf"

    @property
    def supervisor_include_dir(self) -> Path:
        """Programs added by the playbooks (the backup schedule), one ``*.conf`` each."""
        return self.supervisor_dir / "conf.d"

    @property
    def supervisor_socket(self) -> Path:
        return self.supervisor_dir / "supervisor.sock"

    @property
    def supervisor_pid(self) -> Path:
        return self.supervisor_dir / "supervisord.pid"

    @property
    def prometheus_dir(self) -> Path:
        return self.local / "prometheus"

    @property
    def alertmanager_dir(self) -> Path:
        return self.local / "alertmanager"

    @property
    def alertmanager_secrets(self) -> Path:
        """The integration keys Alertmanager reads (test fixtures; 0600, the service user's)."""
        return self.alertmanager_dir / "secrets"

    @property
    def prometheus_rules(self) -> Path:
        """The rule files Prometheus loads: copies of ``alerts/*.rules.yaml`` (`make up`), which
        tests may render with a shorter ``for`` (:func:`environment.write_rules`)."""
        return self.prometheus_dir / "rules"

    @property
    def prometheus_extra_rules(self) -> Path:
        """Rule files loaded besides ``alerts/`` (``make test-page`` writes its alert here)."""
        return self.prometheus_dir / "extra"

    @property
    def blackbox_dir(self) -> Path:
        return self.local / "blackbox"

    @property
    def pages_log(self) -> Path:
        """What the pager sink received: one JSON line per PagerDuty, Opsgenie or Slack call."""
        return self.local / "pages.log"

    @property
    def env_json(self) -> Path:
        return self.local / "env.json"

    @property
    def runtime_venv(self) -> Path:
        """The programs' Python: the project venv, or one the service user can execute."""
        return self.local / "venv" if self.service_user else self.root / ".venv"

    @property
    def alerts_dir(self) -> Path:
        """`alerts/`, or ``LOCAL_ALERTS_DIR`` to try rules under development."""
        override = os.environ.get(ALERTS_DIR_ENV)
        return Path(override).resolve() if override else self.root / "alerts"

    def url(self, name: str) -> str:
        scheme = "https" if name in ("cap-verifier", "cap-dev-idp", "pager-sink") else "http"
        return f"{scheme}://{HOST}:{self.ports.named()[name]}"

    def uid_gid(self) -> tuple[int, int] | None:
        if self.service_user is None:
            return None
        entry = pwd.getpwnam(self.service_user)
        return entry.pw_uid, entry.pw_gid
