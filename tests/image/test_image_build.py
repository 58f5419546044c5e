"""The service image built for real (buildah on the mmdebstrap bases), run and inspected.

Run read-only as uid 1000 under podman/runc: ``--version`` and ``/healthz`` over TLS 1.3 from
the container. Its filesystem (``podman export``) and configuration are checked by functions
that are each shown to catch a bad input first. A rebuild without cache gives the same files.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import ssl
import tarfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import httpx
import pytest

from cap_ops.devkit.jwks_server import JWKSServer
from cap_ops.devkit.pki import PKI
from cap_ops.devkit.service import service_config
from cap_ops.devkit.tokens import AUDIENCE, ISSUER
from cap_ops.image import base
from cap_ops.image.build import BuiltImage, build_image, built_image
from cap_ops.image.containers import ContainerError, run
from cap_ops.poll import wait_until
from cap_verifier import __version__

pytestmark = pytest.mark.slow

UID = 1000
CONFIG_DIR = PurePosixPath("/etc/cap-verifier")
"""Where the image's default ``CAP_VERIFIER_CONFIG`` points."""
VENV_SITE = "opt/venv/lib/python3.11/site-packages/"
RUN_OPTIONS = ("--rm", "--read-only", "--tmpfs=/tmp", "--no-healthcheck")
"""As in the cluster: read-only root, a scratch /tmp; the user is the image's own."""

FORBIDDEN_PACKAGES = re.compile(
    r"^(cap_dev_idp|cap_ops|ansible|ansible_core|pulumi|pulumi_\w+|pytest|_pytest|boto3|"
    r"botocore|kubernetes|supervisor|moto|flask|authlib|infra|alerts|dashboards|pip|uv)"
    r"([-_.]|$)",
    re.IGNORECASE,
)
"""Top-level names in the image's site-packages that belong to the dev IdP, the ops and infra
tooling, the tests or an installer, never to the service."""
FORBIDDEN_PROGRAMS = re.compile(
    r"^(gcc|cc|c\+\+|g\+\+|cpp|clang|ld|as|make|gcc-\d+|x86_64-linux-gnu-\w+|"
    r"apt|apt-get|apt-cache|aptitude|dpkg|dpkg-\w+|pip|pip3|pip3\.11|uv|perl|curl|wget)$"
)
"""Compilers, package managers and downloaders, in any ``bin`` folder."""
BIN_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin", "opt/venv/bin")
SECRET_PATTERNS = {
    "private key": re.compile(
        rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----\s+[A-Za-z0-9+/=\s]{64,}-----END"
    ),
    "AWS access key id": re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(rb"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "Slack token": re.compile(rb"\bxox[abposr]-[0-9A-Za-z-]{10,}"),
    "age secret key": re.compile(rb"AGE-SECRET-KEY-1[0-9A-Z]{58}"),
}
"""What a leaked credential looks like: a PEM private key with its body, cloud and forge
tokens, an age identity (the backups' key)."""


@dataclass(frozen=True)
class Entry:
    """One path of the image's flattened filesystem."""

    kind: str
    """``file``, ``dir``, ``symlink``, ``hardlink`` or ``other``."""
    mode: int
    uid: int
    gid: int
    digest: str = ""
    """sha256 of a file's contents; a link's target."""
    head: bytes = b""
    """A file's first 16 bytes (a .pyc header)."""
    secrets: tuple[str, ...] = ()


Listing = Mapping[str, Entry]
"""Path (relative, no leading slash) -> entry."""


def read_listing(archive: IO[bytes]) -> dict[str, Entry]:
    """The entries of a ``podman export`` tar stream, with each file's hash and secret hits."""
    entries: dict[str, Entry] = {}
    with tarfile.open(fileobj=archive, mode="r|") as tar:
        for member in tar:
            path = member.name.removeprefix("./").rstrip("/")
            kind, digest, head = "other", "", b""
            secrets: tuple[str, ...] = ()
            if member.isfile():
                stream = tar.extractfile(member)
                assert stream is not None
                data = stream.read()
                kind, digest, head = "file", hashlib.sha256(data).hexdigest(), data[:16]
                secrets = tuple(n for n, p in SECRET_PATTERNS.items() if p.search(data))
            elif member.isdir():
                kind = "dir"
            elif member.issym() or member.islnk():
                kind, digest = ("symlink" if member.issym() else "hardlink"), member.linkname
            entries[path] = Entry(kind, member.mode, member.uid, member.gid, digest, head, secrets)
    return entries


def image_listing(image: str, tmp: Path) -> dict[str, Entry]:
    # Created, never started: the command only has to be given.
    container = run(["podman", "create", image, "/nonexistent"], step=f"podman create {image}")
    container = container.strip()
    archive = tmp / "export.tar"
    try:
        run(["podman", "export", f"--output={archive}", container], step="podman export")
    finally:
        run(["podman", "rm", container], step="podman rm")
    with archive.open("rb") as stream:
        return read_listing(stream)


def inspect(image: str) -> dict[str, Any]:
    document = json.loads(run(["podman", "image", "inspect", image], step="podman inspect"))
    assert isinstance(document, list)
    first: dict[str, Any] = document[0]
    return first


# The checks: each returns the problems it finds (empty: none).


def dev_idp_problems(listing: Listing) -> list[str]:
    return [f"/{p}: the dev IdP" for p in listing if "cap_dev_idp" in p]


def tooling_problems(listing: Listing) -> list[str]:
    return [
        f"/{p}: not the service's"
        for p in listing
        if p.startswith(VENV_SITE) and p.count("/") == VENV_SITE.count("/")
        if FORBIDDEN_PACKAGES.match(p.removeprefix(VENV_SITE))
    ]


def program_problems(listing: Listing) -> list[str]:
    return [
        f"/{p}: compiler, package manager or downloader"
        for p, entry in listing.items()
        if entry.kind != "dir"
        and str(PurePosixPath(p).parent) in BIN_DIRS
        and FORBIDDEN_PROGRAMS.match(PurePosixPath(p).name)
    ]


def setid_problems(listing: Listing) -> list[str]:
    """No set-user-ID or set-group-ID program: uid 1000 has no way up to root."""
    return [
        f"/{p}: mode {e.mode:o}" for p, e in listing.items() if e.mode & 0o6000 and e.kind == "file"
    ]


def secret_problems(listing: Listing) -> list[str]:
    return [f"/{p}: {', '.join(e.secrets)}" for p, e in listing.items() if e.secrets]


def bytecode_problems(listing: Listing) -> list[str]:
    """The service's .pyc files must be checked-hash (flags 0b11): no build time in them."""
    pycs = {p: e for p, e in listing.items() if p.startswith(VENV_SITE) and p.endswith(".pyc")}
    if not pycs:
        return ["no .pyc in the service's environment"]
    return [
        f"/{p}: .pyc flags {int.from_bytes(e.head[4:8], 'little'):#b}, not checked-hash"
        for p, e in pycs.items()
        if int.from_bytes(e.head[4:8], "little") != 0b11
    ]


def scanner_problems(listing: Listing) -> list[str]:
    """The package status the scanner reads must be there."""
    entry = listing.get("var/lib/dpkg/status")
    return [] if entry and entry.kind == "file" else ["/var/lib/dpkg/status: not a file"]


def config_problems(document: Mapping[str, Any]) -> list[str]:
    """User, entrypoint, command, health check and volume of ``podman image inspect``."""
    config = document.get("Config") or {}
    expected: dict[str, Any] = {
        "User": f"{UID}:{UID}",
        "Entrypoint": ["cap-verifier"],
        "Cmd": ["serve"],
        "Healthcheck": ["CMD", "cap-verifier", "probe"],
        "Volumes": ["/data"],
    }
    found = {
        "User": config.get("User"),
        "Entrypoint": config.get("Entrypoint"),
        "Cmd": config.get("Cmd"),
        "Healthcheck": (document.get("Healthcheck") or {}).get("Test"),
        "Volumes": sorted(config.get("Volumes") or {}),
    }
    return [f"{k}: {found[k]!r}, expected {v!r}" for k, v in expected.items() if found[k] != v]


CHECKS: dict[str, Callable[[Listing], list[str]]] = {
    "dev IdP": dev_idp_problems,
    "ops tooling": tooling_problems,
    "programs": program_problems,
    "setid": setid_problems,
    "secrets": secret_problems,
    "bytecode": bytecode_problems,
    "scanner input": scanner_problems,
}

_PYC_CHECKED = b"\xa7\r\r\n\x03\x00\x00\x00" + b"\x00" * 8
_PYC_TIMESTAMP = b"\xa7\r\r\n\x00\x00\x00\x00" + b"\x00" * 8
_KEY = b"-----BEGIN PRIVATE KEY-----\n" + b"MIIE" * 20 + b"\n-----END PRIVATE KEY-----\n"
GOOD = {
    "usr/bin/python3.11": Entry("file", 0o755, 0, 0, "x"),
    "var/lib/dpkg/status": Entry("file", 0o644, 0, 0, "x"),
    f"{VENV_SITE}cap_verifier": Entry("dir", 0o755, 0, 0),
    f"{VENV_SITE}cap_verifier/__pycache__/app.cpython-311.pyc": Entry(
        "file", 0o644, 0, 0, "x", _PYC_CHECKED
    ),
}
BAD: dict[str, dict[str, Entry]] = {
    "dev IdP": {f"{VENV_SITE}cap_dev_idp/app.py": Entry("file", 0o644, 0, 0)},
    "ops tooling": {
        f"{VENV_SITE}ansible": Entry("dir", 0o755, 0, 0),
        f"{VENV_SITE}pulumi-3.272.0.dist-info": Entry("dir", 0o755, 0, 0),
        f"{VENV_SITE}_pytest": Entry("dir", 0o755, 0, 0),
    },
    "programs": {
        "usr/bin/gcc": Entry("symlink", 0o777, 0, 0, "gcc-12"),
        "usr/bin/apt-get": Entry("file", 0o755, 0, 0),
        "usr/bin/dpkg": Entry("file", 0o755, 0, 0),
        "opt/venv/bin/pip": Entry("file", 0o755, 0, 0),
    },
    "setid": {"usr/bin/su": Entry("file", 0o4755, 0, 0, "x")},
    "secrets": {
        "etc/cap-verifier/server.key": Entry("file", 0o600, 0, 0, secrets=("private key",))
    },
    "bytecode": {
        f"{VENV_SITE}cap_verifier/__pycache__/app.cpython-311.pyc": Entry(
            "file", 0o644, 0, 0, "y", _PYC_TIMESTAMP
        )
    },
    "scanner input": {"var/lib/dpkg/status": Entry("dir", 0o755, 0, 0)},
}


@pytest.mark.parametrize("name", CHECKS)
def test_each_check_catches_its_bad_input(name: str) -> None:
    check = CHECKS[name]
    assert check(GOOD) == []
    problems = check({**GOOD, **BAD[name]})
    assert len(problems) == len(BAD[name]), problems


def test_the_secret_patterns_match_a_real_key_and_not_a_pem_marker() -> None:
    hits = read_listing_of(
        {"server.key": _KEY, "code.py": b'MARK = b"-----BEGIN PRIVATE KEY-----"'}
    )
    assert hits["server.key"].secrets == ("private key",)
    assert hits["code.py"].secrets == ()


def read_listing_of(files: Mapping[str, bytes]) -> dict[str, Entry]:
    """``read_listing`` of a tar made here from ``files``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return read_listing(buffer)


def test_config_check_catches_a_root_user_and_a_lost_health_check() -> None:
    config = {
        "User": "1000:1000",
        "Entrypoint": ["cap-verifier"],
        "Cmd": ["serve"],
        "Volumes": {"/data": {}},
    }
    good = {"Config": config, "Healthcheck": {"Test": ["CMD", "cap-verifier", "probe"]}}
    assert config_problems(good) == []
    bad = {"Config": {**config, "User": "", "Cmd": ["sh"]}, "Healthcheck": None}
    assert len(config_problems(bad)) == 3


# The image itself.


@pytest.fixture(scope="module")
def listing(service_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Listing:
    return image_listing(service_image.image_id, tmp_path_factory.mktemp("export"))


@pytest.mark.parametrize("name", CHECKS)
def test_image_contents(name: str, listing: Listing) -> None:
    assert CHECKS[name](listing) == []


def test_image_configuration(service_image: BuiltImage) -> None:
    document = inspect(service_image.image_id)
    assert config_problems(document) == []
    labels = document["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.revision"] == service_image.revision


TOOLCHAIN_PACKAGES = frozenset(
    {"apt", "gcc", "gcc-12", "cpp", "cpp-12", "binutils", "make", "python3-pip", "python3.11-dev"}
)


def package_problems(status: str) -> list[str]:
    """Debian packages the runtime image must not list: a toolchain, an installer, or one that
    base.RUNTIME purges (its status must stay true for the scanner)."""
    installed = set(re.findall(r"^Package: (\S+)$", status, re.M))
    if not installed:
        return ["no package in /var/lib/dpkg/status"]
    purged = {name for batch in base.RUNTIME.purge for name in batch}
    return [f"{name} is installed" for name in sorted(installed & (purged | TOOLCHAIN_PACKAGES))]


def test_package_check_catches_a_toolchain_and_a_purged_package() -> None:
    status = "Package: libc6\nStatus: install ok installed\n\nPackage: python3.11\n"
    assert package_problems(status) == []
    assert package_problems("") == ["no package in /var/lib/dpkg/status"]
    bad = status + "\nPackage: gcc-12\n\nPackage: perl-base\n"
    assert package_problems(bad) == ["gcc-12 is installed", "perl-base is installed"]


def test_runtime_packages_are_the_trimmed_base(service_image: BuiltImage, tmp_path: Path) -> None:
    """The image runs on base.RUNTIME, whose programs hold no installer or compiler, and whose
    package status lists nothing it purged and no toolchain."""
    assert service_image.runtime_base == base.RUNTIME.reference
    assert program_problems(image_listing(service_image.runtime_base, tmp_path)) == []
    status = run(
        ["podman", "run", *RUN_OPTIONS, "--entrypoint=python3", service_image.image_id, "-c",
         "print(open('/var/lib/dpkg/status').read())"],
        step="read dpkg status",
    )  # fmt: skip
    assert package_problems(status) == []


@pytest.mark.orr("1.5-01", "1.5-02")
def test_version_on_a_read_only_root_as_uid_1000(service_image: BuiltImage) -> None:
    """The image's own user (no --user given) is uid 1000, and / is not writable."""
    out = run(
        ["podman", "run", *RUN_OPTIONS, service_image.by_digest, "--version"],
        step="podman run --version",
    )
    assert out.strip() == f"cap-verifier {__version__}"
    whoami = run(
        ["podman", "run", *RUN_OPTIONS, "--entrypoint=python3", service_image.by_digest,
         "-c", "import os; print(os.getuid(), os.access('/', os.W_OK))"],
        step="podman run id",
    )  # fmt: skip
    assert whoami.split() == [str(UID), "False"]


@contextmanager
def container(name: str, image: str, *options: str) -> Iterator[str]:
    """A detached container, stopped and removed by name when the block ends."""
    run(["podman", "run", "--detach", f"--name={name}", *options, image], step="podman run")
    try:
        yield name
    finally:
        run(["podman", "rm", "--force", "--time=10", name], step=f"podman rm {name}")


def test_healthz_over_tls_13_from_the_container(
    service_image: BuiltImage, pki: PKI, jwks_server: JWKSServer, tmp_path: Path
) -> None:
    """The image's own entrypoint and command, its default config path, the host's network."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    files = {"server.crt": pki.server.cert, "server.key": pki.server.key, "ca.crt": pki.ca_cert}
    for name, source in files.items():
        (config_dir / name).write_bytes(source.read_bytes())
        (config_dir / name).chmod(0o644)  # a throwaway key, readable by uid 1000 in the container
    config = service_config(
        tmp_path,
        cert=Path(str(CONFIG_DIR / "server.crt")),
        key=Path(str(CONFIG_DIR / "server.key")),
        ca_cert=Path(str(CONFIG_DIR / "ca.crt")),
        jwks_url=jwks_server.url,
        issuer=ISSUER,
        audience=AUDIENCE,
    )
    (config_dir / "config.yaml").write_text(json.dumps(config))
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    url = f"https://127.0.0.1:{config['server']['port']}/healthz"
    responses: list[tuple[httpx.Response, str]] = []
    name = f"cap-verifier-test-{uuid.uuid4().hex[:8]}"
    with (
        container(
            name,
            service_image.by_digest,
            "--read-only",
            "--tmpfs=/tmp",
            "--network=host",
            f"--volume={config_dir}:{CONFIG_DIR}:ro",
        ),
        httpx.Client(verify=context, timeout=2) as client,
    ):

        def answered() -> bool:
            response = client.get(url)
            tls = response.extensions["network_stream"].get_extra_info("ssl_object")
            responses.append((response, tls.version()))
            return True

        wait_until(
            answered,
            timeout=30,
            what=f"{url} from container {name}",
            ignore=(httpx.TransportError,),
        )
        check = run(["podman", "healthcheck", "run", name], step="podman healthcheck run")
    response, version = responses[-1]
    assert response.status_code == 200, response.text
    assert version == "TLSv1.3"
    assert check.strip() in {"", "healthy"}


BUILD_IDENTIFIERS = ("container", "parent", "container_config")
"""Image config fields that name buildah 1.28's build containers and intermediate images: they
differ on every build, so the image id and digest do too (newer buildah drops them)."""


def comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    """An image config without the build's identifiers (the runtime Hostname is one)."""
    kept = {k: v for k, v in config.items() if k not in BUILD_IDENTIFIERS}
    kept["config"] = {k: v for k, v in kept.get("config", {}).items() if k != "Hostname"}
    kept["history"] = [
        {k: v for k, v in step.items() if not (k == "comment" and v.startswith("FROM "))}
        for step in kept.get("history", [])
    ]
    return kept


def raw_config(image_id: str) -> dict[str, Any]:
    """The image's config as stored (skopeo names a stored image by its bare hex id)."""
    image_id = image_id.removeprefix("sha256:")
    document = json.loads(
        run(
            ["skopeo", "inspect", "--raw", "--config", f"containers-storage:{image_id}"],
            step="skopeo inspect --config",
        )
    )
    assert isinstance(document, dict)
    return document


def test_comparable_keeps_what_matters() -> None:
    config = {
        "container": "a1",
        "config": {"Hostname": "a1", "User": "1000:1000"},
        "rootfs": {"diff_ids": ["sha256:1"]},
        "history": [{"created_by": "RUN x", "comment": "FROM 01ab"}],
    }
    other = {**config, "container": "b2", "config": {"Hostname": "b2", "User": "1000:1000"}}
    assert comparable(config) == comparable(other)
    assert comparable(config) != comparable({**config, "rootfs": {"diff_ids": ["sha256:2"]}})
    assert comparable(config) != comparable({**config, "config": {"User": "0"}})


def test_a_rebuild_without_cache_gives_the_same_layers(
    service_image: BuiltImage, listing: Listing, tmp_path: Path
) -> None:
    """Bit-identical layers (same diff ids) and the same config but for buildah's build
    identifiers: the image id and digest differ (see BUILD_IDENTIFIERS), the files do not."""
    rebuilt = build_image(
        no_cache=True,
        tag=f"{service_image.reference}-rebuild",
        revision=service_image.revision,  # other commits may have come since
        record=None,
    )
    try:
        first, second = raw_config(service_image.image_id), raw_config(rebuilt.image_id)
        assert second["rootfs"]["diff_ids"] == first["rootfs"]["diff_ids"]
        assert comparable(second) == comparable(first)
        assert image_listing(rebuilt.image_id, tmp_path) == listing
    finally:
        run(["podman", "rmi", rebuilt.reference], step="podman rmi")


def test_a_missing_record_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ContainerError, match=r"^no image built yet .*: run make image$"):
        built_image(tmp_path / "image.json")
