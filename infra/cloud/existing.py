"""``cluster.provider: existing``: the server's version, read through ``kubectl`` on the stack's
kubeconfig context, must lie within the supported range."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

from infra.config import ConfigError, EnvConfig

TIMEOUT_SECONDS = 30


def parse_version(git_version: str) -> str:
    """``v1.30.4-eks-a737599`` -> ``1.30``."""
    found = re.match(r"^v?(1)\.([0-9]+)", git_version)
    if found is None:
        raise ValueError(f"not a Kubernetes version: {git_version!r}")
    return f"{found[1]}.{found[2]}"


def check_version(cfg: EnvConfig, server_version: str) -> None:
    """One ConfigError line when the server runs a version outside the supported range."""
    cluster = cfg.cluster
    version = parse_version(server_version)
    if not cluster.supports(version):
        oldest, newest = cluster.k8s_versions
        context = cluster.kube_context or "(current context)"
        raise ConfigError(
            f"Pulumi.{cfg.env}.yaml: cap-verifier-ops:cluster.kube_context: {context} runs"
            f" Kubernetes {version}, outside the supported range {oldest}..{newest}"
        )


def server_version(context: str | None) -> str:
    """The adapter: ``kubectl version`` of ``context``'s server (its ``gitVersion``)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise ConfigError("kubectl: not found on PATH (needed to read the server's version)")
    argv = [kubectl, "version", "--output=json", *([f"--context={context}"] if context else [])]
    done = subprocess.run(  # noqa: S603 (fixed argv)
        argv, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
    )
    try:
        return str(json.loads(done.stdout)["serverVersion"]["gitVersion"])
    except (ValueError, KeyError, TypeError):
        problem = done.stderr.strip().splitlines()[-1:] or ["no server version"]
        raise ConfigError(f"kubectl version --context={context}: {problem[0]}") from None


ADAPTER = server_version
"""The real adapter, also when ``server_version`` is replaced (tests fake it)."""
