"""The local environment under test: started by the suite when it is not running, and then
stopped by it again (a running one, started by a developer, is left as it was)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra

from cap_ops.localenv import preflight, supervisor
from cap_ops.localenv.layout import Layout
from support.localenv import localenv
from support.require import need


@pytest.fixture(scope="session")
def layout() -> Layout:
    return Layout.default()


@pytest.fixture(scope="session")
def local_env(layout: Layout) -> Iterator[dict[str, Any]]:
    """`make up` (unless already up), yielding `.local/env.json`."""
    need(
        not preflight.missing_packages() or Path("/usr/bin/apt-get").exists(),
        "the Debian packages prometheus and prometheus-alertmanager",
    )
    started_here = supervisor.running_pid(layout) is None
    result = localenv("up")
    assert result.returncode == 0, f"make up failed:\n{result.stdout}\n{result.stderr}"
    try:
        yield json.loads(layout.env_json.read_text())
    finally:
        if started_here:
            stopped = localenv("down")
            assert stopped.returncode == 0, stopped.stderr


@pytest.fixture(scope="session")
def host(local_env: dict[str, Any]) -> Any:
    return testinfra.get_host("local://")
