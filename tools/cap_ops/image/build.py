"""``make image``: build ``service/Dockerfile`` with buildah on the local Debian bases.

The build is reproducible: ``SOURCE_DATE_EPOCH`` and buildah's ``--timestamp`` are the bases'
fixed time (not the commit's: buildah 1.28 reuses a cached step whatever its timestamp, so a
per-commit time would make a cached build differ from a fresh one), and a rebuild of the same
tree gives bit-identical layers; see tests/image for what still differs in the config.

The result is recorded in ``.local/image/image.json``; ``make sign`` and ``make scan`` read it
with :func:`built_image` and refer to the image by digest from then on.
"""

from __future__ import annotations

import argparse
import fcntl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from cap_ops.image import base
from cap_ops.image.containers import ROOT, STATE, SYSTEM_CA, ContainerError, run
from cap_verifier import __version__

DOCKERFILE = ROOT / "service" / "Dockerfile"
NAME = "localhost/cap-verifier"
RECORD = ROOT / ".local" / "image" / "image.json"
BUILD_COMMAND = "make image"

Digest = Annotated[str, Meta(pattern=r"^sha256:[0-9a-f]{64}$")]


class BuiltImage(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One build of the service image, in the project's containers storage."""

    reference: str
    """``localhost/cap-verifier:<version>``, the tag this build moved."""
    image_id: Digest
    digest: Digest
    """The manifest digest in local storage (a registry may hold it under another)."""
    version: str
    revision: Annotated[str, Meta(pattern=r"^[0-9a-f]{40}$")]
    source_date_epoch: int
    build_base: str
    runtime_base: str
    size_bytes: Annotated[int, Meta(gt=0)]
    """Uncompressed, as local storage counts it."""
    build_seconds: float

    @property
    def by_digest(self) -> str:
        return f"{NAME}@{self.digest}"


def _git(*args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ContainerError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def build_arguments(*, epoch: int, revision: str, build_base: str, runtime_base: str) -> list[str]:
    """``buildah build`` minus ``--no-cache``, the tag and the context (for tests and docs)."""
    mounts = ["--volume", f"{SYSTEM_CA}:{SYSTEM_CA}:ro"] if SYSTEM_CA.exists() else []
    arguments = {
        "BUILD_IMAGE": build_base,
        "RUNTIME_IMAGE": runtime_base,
        "BUILD_SHA": revision,
        "VERSION": __version__,
        "SOURCE_DATE_EPOCH": str(epoch),
    }
    return [
        "buildah",
        "build",
        "--isolation=chroot",
        "--layers",
        "--format=docker",  # keeps HEALTHCHECK (OCI has no such field)
        "--pull=never",
        f"--timestamp={epoch}",
        f"--file={DOCKERFILE}",
        *mounts,
        *(f"--build-arg={key}={value}" for key, value in arguments.items()),
    ]


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """One build at a time (pytest-xdist workers share the storage and the record)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_image(
    *,
    no_cache: bool = False,
    tag: str | None = None,
    revision: str | None = None,
    state: Path = STATE,
    record: Path | None = RECORD,
) -> BuiltImage:
    """Build the image (and the bases if missing), tagged ``tag`` (default ``NAME:version``);
    record it in ``record`` unless None. ``revision`` (default HEAD) is the label's: the files
    come from the working tree."""
    with _exclusive(RECORD.with_suffix(".lock")):
        build_base, runtime_base = base.build_bases(state=state)
        revision = _git("rev-parse", revision or "HEAD")
        epoch = base.SOURCE_DATE_EPOCH
        reference = tag or f"{NAME}:{__version__}"
        started = time.monotonic()
        run(
            [
                *build_arguments(
                    epoch=epoch, revision=revision, build_base=build_base, runtime_base=runtime_base
                ),
                *(["--no-cache"] if no_cache else []),
                f"--tag={reference}",
                ROOT,
            ],
            step="buildah build",
            state=state,
            echo=True,
        )
        seconds = round(time.monotonic() - started, 1)
        image_id, digest, size = run(
            ["podman", "image", "inspect", "--format={{.ID}} {{.Digest}} {{.Size}}", reference],
            step=f"podman image inspect {reference}",
            state=state,
        ).split()
        built = BuiltImage(
            reference=reference,
            image_id=f"sha256:{image_id}",
            digest=digest,
            version=__version__,
            revision=revision,
            source_date_epoch=epoch,
            build_base=build_base,
            runtime_base=runtime_base,
            size_bytes=int(size),
            build_seconds=seconds,
        )
        if record is not None:
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_bytes(msgspec.json.format(msgspec.json.encode(built)) + b"\n")
        return built


def built_image(record: Path = RECORD) -> BuiltImage:
    """The last build's record; ContainerError (one line) when there is none or it is unreadable."""
    try:
        return msgspec.json.decode(record.read_bytes(), type=BuiltImage)
    except FileNotFoundError:
        raise ContainerError(f"no image built yet ({record}): run {BUILD_COMMAND}") from None
    except msgspec.ValidationError as exc:
        raise ContainerError(f"{record}: {exc}: run {BUILD_COMMAND} again") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cap_ops.image build", description=__doc__)
    parser.add_argument("--no-cache", action="store_true", help="rebuild every layer")
    args = parser.parse_args(argv)
    try:
        built = build_image(no_cache=args.no_cache)
    except ContainerError as exc:
        print(f"image: {exc}", file=sys.stderr)
        return 1
    print(
        f"image {built.reference} = {built.by_digest} (id {built.image_id}), "
        f"{built.size_bytes / 2**20:.1f} MiB, built in {built.build_seconds} s; "
        f"recorded in {RECORD.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
