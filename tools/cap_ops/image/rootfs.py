"""An image's root filesystem, read from the host: mounted read-only from the project's
containers storage (``podman image mount``) for the length of a block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cap_ops.image import containers

VENV = Path("opt/venv")
"""Where the Dockerfile installs the service's environment (``UV_PROJECT_ENVIRONMENT``)."""
DPKG_STATUS = Path("var/lib/dpkg/status")


@contextmanager
def mounted(image: str, state: Path = containers.STATE) -> Iterator[Path]:
    """The root of ``image`` (reference or ID) until the block ends."""
    path = containers.run(
        ["podman", "image", "mount", image], step=f"podman image mount {image}", state=state
    ).strip()
    try:
        yield Path(path)
    finally:
        containers.run(
            ["podman", "image", "unmount", image],
            step=f"podman image unmount {image}",
            state=state,
        )
