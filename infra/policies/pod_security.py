"""Pod Security Standards "restricted" (and baseline), field by field."""

from __future__ import annotations

from typing import Any

from infra.policies.manifests import RESTRICTED_VOLUME_TYPES


def pod_security_restricted(spec: dict[str, Any]) -> list[str]:
    """Pod Security Standards "restricted" (and baseline), field by field."""
    errors: list[str] = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            errors.append(f"{field} must be unset or false")
    pod_sc = spec.get("securityContext", {})
    containers = [
        *spec.get("initContainers", []),
        *spec.get("containers", []),
        *spec.get("ephemeralContainers", []),
    ]
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            errors.append(f"volume {volume['name']}: type {sorted(kinds)} not allowed")
    for sysctl in pod_sc.get("sysctls", []):
        errors.append(f"sysctl {sysctl.get('name')} not allowed")
    for c in containers:
        sc = c.get("securityContext", {})
        name = c["name"]

        def eff(key: str, sc: dict[str, Any] = sc) -> Any:
            return sc.get(key, pod_sc.get(key))

        if eff("runAsNonRoot") is not True:
            errors.append(f"{name}: runAsNonRoot must be true")
        if eff("runAsUser") == 0:
            errors.append(f"{name}: runAsUser must not be 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{name}: allowPrivilegeEscalation must be false")
        if sc.get("privileged"):
            errors.append(f"{name}: privileged not allowed")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            errors.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            errors.append(f"{name}: only NET_BIND_SERVICE may be added")
        seccomp = eff("seccompProfile") or {}
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            errors.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        if sc.get("procMount", "Default") != "Default":
            errors.append(f"{name}: procMount must be Default")
        if (eff("seLinuxOptions") or {}).get("type") not in (
            None,
            "",
            "container_t",
            "container_init_t",
            "container_kvm_t",
            "container_engine_t",
        ):
            errors.append(f"{name}: seLinuxOptions.type not allowed")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            errors.append(f"{name}: hostPort not allowed")
    return errors
