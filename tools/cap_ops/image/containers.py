"""buildah, podman and mmdebstrap under the project's own container configuration.

Every call gets ``CONTAINERS_STORAGE_CONF`` and ``CONTAINERS_CONF`` pointing at files written
under ``.local/containers/``: images, layers and run state live there, never in the machine's
``/var/lib/containers`` or ``/run/containers``. The engine settings are the ones these machines
need: runc (crun fails on their cgroups-v1 hybrid hierarchy), cgroupfs, the host's network,
rlimits no higher than the host allows, overlay storage (vfs is five times slower).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
STATE = ROOT / ".local" / "containers"
SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")
"""The machine's CA bundle (it holds the HTTPS proxy's CA): mounted read-only into a build
that downloads, never copied into an image."""

DEBIAN_PACKAGES = {
    "buildah": "buildah",
    "podman": "podman",
    "skopeo": "skopeo",
    "mmdebstrap": "mmdebstrap",
    "runc": "runc",
    "docker-registry": "docker-registry",
}
"""Program -> the Debian package that provides it (``.ci/run`` installs them)."""

ULIMITS = ("nofile=20000:20000", "nproc=4096:4096")
"""Within the host's hard limits: raising an rlimit is not permitted in these machines."""


ERROR_MARKS = ("E: ", "Error: ", "error: ")
"""How mmdebstrap, buildah and podman start an error line: the first such line is the cause."""


BUILD_STEP = re.compile(r"\bSTEP \d+/\d+: ")
"""buildah's line for each Dockerfile instruction (``[1/2] STEP 4/10: RUN ...``)."""


class ContainerError(Exception):
    """One line: which program is missing, or which step failed and its last error line."""


def program(name: str) -> str:
    """The path of ``name``; ContainerError naming its Debian package when it is missing."""
    found = shutil.which(name)
    if found is None:
        package = DEBIAN_PACKAGES.get(name, name)
        raise ContainerError(f"{name} is not installed: apt-get install {package}")
    return found


def _toml_string(value: str | Path) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def storage_conf(state: Path) -> str:
    return "\n".join(
        [
            "[storage]",
            'driver = "overlay"',
            f"graphroot = {_toml_string(state / 'storage')}",
            f"runroot = {_toml_string(state / 'run')}",
            "",
        ]
    )


def containers_conf(state: Path) -> str:
    ulimits = ", ".join(_toml_string(u) for u in ULIMITS)
    return "\n".join(
        [
            "[containers]",
            'netns = "host"',
            f"default_ulimits = [{ulimits}]",
            "",
            "[engine]",
            'runtime = "runc"',
            'cgroup_manager = "cgroupfs"',
            'events_logger = "file"',
            f"events_logfile_path = {_toml_string(state / 'events.log')}",
            f"tmp_dir = {_toml_string(state / 'tmp')}",
            f"volume_path = {_toml_string(state / 'volumes')}",
            "",
        ]
    )


def environment(state: Path = STATE, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a container tool: the project's configuration files, written now."""
    state.mkdir(parents=True, exist_ok=True)
    files = {"storage.conf": storage_conf(state), "containers.conf": containers_conf(state)}
    for name, text in files.items():
        path = state / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    env = dict(os.environ if base is None else base)
    env["CONTAINERS_STORAGE_CONF"] = str(state / "storage.conf")
    env["CONTAINERS_CONF"] = str(state / "containers.conf")
    return env


def run(
    args: Sequence[str | Path],
    *,
    step: str,
    state: Path = STATE,
    env: Mapping[str, str] | None = None,
    echo: bool = False,
) -> str:
    """Run a container tool and return its stdout (also printed as it comes when ``echo``).

    On failure, ContainerError ``<step> failed[ at <the build's last STEP line>]: <the last
    error line>``.
    """
    command = [program(str(args[0])), *map(str, args[1:])]
    with subprocess.Popen(
        command,
        env={**environment(state), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        stdout, stderr = process.stdout, process.stderr
        assert stdout is not None
        assert stderr is not None
        err: list[str] = []
        drain = threading.Thread(target=lambda: err.extend(stderr), daemon=True)
        drain.start()
        out: list[str] = []
        for line in stdout:
            out.append(line)
            if echo:
                print(line, end="", flush=True)
        drain.join()
        errors = [line.strip() for line in err if line.strip()]
    if process.returncode != 0:
        marked = [line for line in errors if line.startswith(ERROR_MARKS)]
        last = (marked or errors or [f"exit status {process.returncode}"])[0 if marked else -1]
        at = next((line.strip() for line in reversed(out) if BUILD_STEP.search(line)), None)
        raise ContainerError(f"{step} failed{f' at {at}' if at else ''}: {last}")
    return "".join(out)


def image_exists(reference: str, state: Path = STATE) -> bool:
    program("podman")
    result = subprocess.run(
        ["podman", "image", "exists", reference],
        env=environment(state),
        capture_output=True,
        check=False,
    )
    return result.returncode == 0
