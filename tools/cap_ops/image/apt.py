"""apt with a configuration of the project's own: never the machine's sources.

The sources list, the downloaded lists, the cache and the package status live in a folder the
caller gives (``.tools/cosign/apt``, a scan's temporary folder); the machine's ``apt.conf.d``
still applies (its proxy, its date checks). The mirrors are the machine's own Debian mirrors
(the archive and the security archive, read from its apt configuration), or ``DEBIAN_MIRROR`` /
``DEBIAN_SECURITY_MIRROR``: only the suites differ from what the machine uses.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
MIRROR_ENV = {"archive": "DEBIAN_MIRROR", "security": "DEBIAN_SECURITY_MIRROR"}
Archive = Literal["archive", "security"]


class AptError(Exception):
    """One line: which apt step failed and apt's last error line."""


@dataclass(frozen=True)
class Source:
    """One ``deb`` line: a mirror, a suite, its components."""

    uri: str
    suite: str
    components: tuple[str, ...] = ("main",)

    def line(self) -> str:
        return f"deb [signed-by={KEYRING}] {self.uri} {self.suite} {' '.join(self.components)}"


def machine_mirror(archive: Archive) -> str:
    """The Debian mirror the machine's apt uses for ``archive`` (or its environment variable)."""
    variable = MIRROR_ENV[archive]
    if os.environ.get(variable):
        return os.environ[variable]
    listed = subprocess.run(
        ["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE)"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split("\n")
    for entry in listed:
        uri, _, suite = entry.partition(" ")
        if uri and suite.endswith("-security") == (archive == "security"):
            return uri.rstrip("/")
    raise AptError(f"the machine's apt has no Debian {archive} mirror: set {variable}=<URI>")


def _last_error(output: str) -> str:
    """apt's most telling line: an error, else a failed fetch (apt may only warn), else the
    last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for prefix in ("E:", "W: Failed to fetch", "Err:"):
        found = [line for line in lines if line.startswith(prefix)]
        if found:
            return found[0]
    return (lines or ["no output"])[-1]


class Apt:
    """apt-get and apt-cache on ``sources`` with their state under ``root``; ``status`` is the
    dpkg status file to plan against (an image's, or none: nothing installed)."""

    def __init__(self, root: Path, sources: Sequence[Source], status: Path | None = None) -> None:
        self.root = root
        self.sources = tuple(sources)
        self.status = status

    def options(self) -> list[str]:
        settings = {
            "Dir::Etc::sourcelist": self.root / "sources.list",
            "Dir::Etc::sourceparts": self.root / "sources.list.d",
            "Dir::Etc::preferences": self.root / "preferences",
            "Dir::Etc::preferencesparts": self.root / "preferences.d",
            "Dir::State": self.root / "state",
            "Dir::State::lists": self.root / "lists",
            "Dir::State::status": self.status or self.root / "status",
            "Dir::Cache": self.root / "cache",
            "APT::Sandbox::User": "root",
            "Acquire::Languages": "none",
        }
        return [arg for key, value in settings.items() for arg in ("-o", f"{key}={value}")]

    def _prepare(self) -> None:
        for folder in ("sources.list.d", "preferences.d", "state", "lists/partial", "cache"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        (self.root / "status").touch()
        text = "".join(f"{source.line()}\n" for source in self.sources)
        (self.root / "sources.list").write_text(text)

    def run(self, program: str, *args: str, step: str, cwd: Path | None = None) -> str:
        """``program`` (apt-get, apt-cache) with this configuration: its stdout, then its
        stderr (where apt writes its warnings); AptError when it fails."""
        result = subprocess.run(
            [program, *self.options(), *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=cwd,
        )
        if result.returncode != 0:
            raise AptError(f"{step} failed: {_last_error(result.stdout + result.stderr)}")
        return result.stdout + result.stderr

    def update(self) -> None:
        """Fetch the lists of every source; any list that did not arrive is an :class:`AptError`
        (apt itself may only warn and go on with none)."""
        self._prepare()
        output = self.run("apt-get", "update", step=f"apt-get update of {self.describe()}")
        fetched = self.run(
            "apt-get",
            "indextargets",
            "--format",
            "$(FILENAME)",
            "Identifier: Packages",
            step="apt-get indextargets",
        ).split()
        for source in self.sources:
            marker = f"_dists_{source.suite}_"
            if not any(marker in name and Path(name).exists() for name in fetched):
                raise AptError(
                    f"no package list for {source.uri} {source.suite}: "
                    f"the mirror is unreachable or has no such suite ({_last_error(output)})"
                )

    def describe(self) -> str:
        return ", ".join(f"{s.uri} {s.suite}" for s in self.sources)
