"""The service image, built once per test session (``make image``'s build, same storage)."""

from __future__ import annotations

import shutil

import pytest

from cap_ops.image.build import BuiltImage, build_image
from support.require import need

BUILD_TIMEOUT = 900
"""Seconds for a test that may build the image: on a fresh machine the first one also makes
both Debian bases (mmdebstrap, a few minutes), beyond the suite's 300 s."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses_image = "service_image" in getattr(item, "fixturenames", ())
        if uses_image and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(BUILD_TIMEOUT))


@pytest.fixture(scope="session")
def service_image() -> BuiltImage:
    """The image of this tree, built (or found in buildah's layer cache) and recorded."""
    for program in ("buildah", "podman", "mmdebstrap", "runc"):
        need(shutil.which(program) is not None, f"{program} (Debian package) is not installed")
    return build_image()
