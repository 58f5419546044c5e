"""The service image, built once per test session (``make image``'s build, same storage)."""

from __future__ import annotations

import shutil

import pytest

from cap_ops.image.build import BuiltImage, build_image
from support.require import need


@pytest.fixture(scope="session")
def service_image() -> BuiltImage:
    """The image of this tree, built (or found in buildah's layer cache) and recorded."""
    for program in ("buildah", "podman", "mmdebstrap", "runc"):
        need(shutil.which(program) is not None, f"{program} (Debian package) is not installed")
    return build_image()
