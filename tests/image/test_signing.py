"""cosign signatures and the SBOM attestation, for real: the service image pushed by digest to
a local registry (Debian's docker-registry), signed with a key pair made here, verified by
cosign; and every way a verification must refuse (unsigned, another key, a tampered or replayed
signature, a tag moved to another digest). The custody of the committed key is checked too.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from packaging.markers import Marker

from cap_ops.image import containers, cosign, registry, sbom, sign
from cap_ops.image.build import BuiltImage
from support.require import need

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "test-only-password"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SERVICE_HEADLINERS = ("litestar", "granian", "msgspec")


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path


@dataclass(frozen=True)
class Pushed:
    registry: registry.Registry
    repository: str
    digest: str

    @property
    def reference(self) -> str:
        return self.registry.reference(self.repository, self.digest)


def _signing_env() -> dict[str, str]:
    return {"COSIGN_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"}


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tools() -> None:
    for program in ("buildah", "podman", "skopeo", "docker-registry", "runc"):
        need(shutil.which(program) is not None, f"{program} (Debian package) is not installed")
    try:
        cosign.binary()
    except cosign.CosignError as err:
        need(False, str(err))


@pytest.fixture(scope="module")
def local_registry(
    tools: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[registry.Registry]:
    with registry.local_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def key_a(tools: None, tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return KeyPair(*sign.generate_key_pair(tmp_path_factory.mktemp("key-a") / "keys", PASSWORD))


@pytest.fixture(scope="module")
def key_b(tools: None, tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return KeyPair(*sign.generate_key_pair(tmp_path_factory.mktemp("key-b") / "keys", PASSWORD))


@pytest.fixture(scope="module")
def tiny_images(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Three throwaway images (one file each, distinct content) in the project's storage."""
    folder = tmp_path_factory.mktemp("tiny")
    made = []
    for index in range(3):
        (folder / "marker").write_text(f"{index} {uuid.uuid4()}\n")
        container = containers.run(["buildah", "from", "scratch"], step="buildah from").strip()
        containers.run(
            ["buildah", "copy", container, str(folder / "marker"), "/marker"], step="buildah copy"
        )
        made.append(
            containers.run(
                ["buildah", "commit", "--quiet", "--rm", container], step="buildah commit"
            ).strip()
        )
    yield made
    containers.run(["buildah", "rmi", *made], step="buildah rmi")


def _push(reg: registry.Registry, image: str, repository: str, tag: str) -> Pushed:
    return Pushed(reg, repository, registry.push(image, reg, repository, tag))


def _sign(pushed: Pushed, key: KeyPair) -> None:
    sign.sign(pushed.reference, str(key.private), _signing_env())


@pytest.fixture(scope="module")
def signed_service(
    service_image: BuiltImage,
    local_registry: registry.Registry,
    key_a: KeyPair,
    tmp_path_factory: pytest.TempPathFactory,
) -> Pushed:
    """The service image by digest, signed with key A, its environment's SBOM attested."""
    pushed = _push(local_registry, service_image.by_digest, "cap-verifier", service_image.version)
    _sign(pushed, key_a)
    predicate = sbom.image_sbom(service_image.by_digest, tmp_path_factory.mktemp("sbom"))
    sign.attest(pushed.reference, str(key_a.private), predicate, _signing_env())
    return pushed


# --- accepted ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.orr("2.4-01")
def test_the_signed_digest_verifies(signed_service: Pushed, key_a: KeyPair) -> None:
    payloads = sign.verify(signed_service.reference, key_a.public)
    assert [p["critical"]["image"]["docker-manifest-digest"] for p in payloads] == [
        signed_service.digest
    ]


# --- refused -------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_unsigned_image_is_refused(
    local_registry: registry.Registry, tiny_images: list[str], key_a: KeyPair
) -> None:
    unsigned = _push(local_registry, tiny_images[0], "unsigned", "v1")
    with pytest.raises(sign.SignError, match="no signatures found"):
        sign.verify(unsigned.reference, key_a.public)


@pytest.mark.slow
def test_an_image_signed_with_another_key_is_refused(
    local_registry: registry.Registry, tiny_images: list[str], key_a: KeyPair, key_b: KeyPair
) -> None:
    other = _push(local_registry, tiny_images[1], "other-key", "v1")
    _sign(other, key_b)
    assert sign.verify(other.reference, key_b.public)  # it is signed, only not by key A
    with pytest.raises(sign.SignError, match="refused"):
        sign.verify(other.reference, key_a.public)


def _signature_manifest(pushed: Pushed) -> tuple[str, dict[str, object]]:
    """The URL of ``pushed``'s cosign signature manifest and the manifest."""
    tag = pushed.digest.replace(":", "-") + ".sig"
    url = f"{pushed.registry.url}/v2/{pushed.repository}/manifests/{tag}"
    response = httpx.get(url, headers={"Accept": OCI_MANIFEST})
    response.raise_for_status()
    return url, response.json()


def _put_manifest(url: str, manifest: dict[str, object]) -> None:
    body = json.dumps(manifest).encode()
    httpx.put(url, content=body, headers={"Content-Type": OCI_MANIFEST}).raise_for_status()


def _flip_signature(manifest: dict[str, object]) -> dict[str, object]:
    layers = manifest["layers"]
    assert isinstance(layers, list)
    annotations = layers[0]["annotations"]
    raw = bytearray(base64.b64decode(annotations[SIGNATURE_ANNOTATION]))
    raw[-1] ^= 0x01
    annotations[SIGNATURE_ANNOTATION] = base64.b64encode(bytes(raw)).decode()
    return manifest


@pytest.mark.slow
def test_a_tampered_signature_is_refused(
    local_registry: registry.Registry, tiny_images: list[str], key_a: KeyPair
) -> None:
    pushed = _push(local_registry, tiny_images[2], "tampered", "v1")
    _sign(pushed, key_a)
    assert sign.verify(pushed.reference, key_a.public)
    url, manifest = _signature_manifest(pushed)
    _put_manifest(url, _flip_signature(manifest))
    with pytest.raises(sign.SignError, match="refused"):
        sign.verify(pushed.reference, key_a.public)


@pytest.mark.slow
def test_a_signature_replayed_onto_another_digest_is_refused(
    local_registry: registry.Registry, tiny_images: list[str], key_a: KeyPair
) -> None:
    """A valid signature of image 0 stored as image 1's signature (same repository)."""
    signed = _push(local_registry, tiny_images[0], "replayed", "signed")
    forged = _push(local_registry, tiny_images[1], "replayed", "forged")
    _sign(signed, key_a)
    _, manifest = _signature_manifest(signed)
    tag = forged.digest.replace(":", "-") + ".sig"
    _put_manifest(f"{local_registry.url}/v2/replayed/manifests/{tag}", manifest)
    with pytest.raises(sign.SignError, match="refused"):
        sign.verify(forged.reference, key_a.public)


@pytest.mark.slow
def test_a_tag_moved_to_another_digest_is_refused(
    local_registry: registry.Registry, tiny_images: list[str], key_a: KeyPair
) -> None:
    release = local_registry.tag_reference("moved", "release")
    first = _push(local_registry, tiny_images[0], "moved", "release")
    _sign(first, key_a)
    assert sign.verify(release, key_a.public)
    _push(local_registry, tiny_images[2], "moved", "release")  # the tag now names another image
    with pytest.raises(sign.SignError, match="no signatures found"):
        sign.verify(release, key_a.public)
    assert sign.verify(first.reference, key_a.public)  # the digest still is what was signed


# --- the SBOM attestation ------------------------------------------------------------------


def _locked_closure(lock: dict[str, Any], roots: list[dict[str, Any]]) -> dict[str, str]:
    """Name -> version of ``roots`` and their dependencies in uv.lock, markers evaluated here."""
    packages = {p["name"]: p for p in lock["package"]}
    found: dict[str, str] = {}
    pending = list(roots)
    while pending:
        entry = pending.pop()
        marker = entry.get("marker")
        if isinstance(marker, str) and not Marker(marker).evaluate():
            continue
        package = packages[entry["name"]]
        extras = entry.get("extra", [])
        if package["name"] in found and not extras:
            continue
        found[package["name"]] = package["version"]
        pending.extend(package.get("dependencies", []))
        for extra in extras:
            pending.extend(package.get("optional-dependencies", {}).get(extra, []))
    return found


def _uv_lock_sets() -> tuple[dict[str, str], set[str]]:
    """(the service's locked packages with the project itself, the packages only the groups
    bring: dev, idp, infra, ops)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    project = next(p for p in lock["package"] if p["source"].get("editable") == ".")
    service = _locked_closure(lock, project["dependencies"])
    service[project["name"]] = project["version"]
    groups = _locked_closure(
        lock, [d for deps in project["dev-dependencies"].values() for d in deps]
    )
    return service, set(groups) - set(service)


def _names(components: list[dict[str, str]]) -> dict[str, str]:
    return {re.sub(r"[-_.]+", "-", c["name"]).lower(): c["version"] for c in components}


@pytest.mark.slow
def test_the_sbom_attestation_verifies_and_lists_the_locked_service_packages(
    signed_service: Pushed, key_a: KeyPair
) -> None:
    statements = sign.verify_attestation(signed_service.reference, key_a.public)
    assert [s["predicateType"] for s in statements] == ["https://cyclonedx.org/bom"]
    subject = statements[0]["subject"][0]["digest"]["sha256"]
    assert f"sha256:{subject}" == signed_service.digest
    listed = _names(statements[0]["predicate"]["components"])
    service, group_only = _uv_lock_sets()
    assert listed == service
    for name in SERVICE_HEADLINERS:
        assert listed[name] == service[name]
    assert {"pytest", "ansible-core", "flask", "pulumi", "boto3"} <= group_only
    assert not group_only & set(listed), "the image holds packages of a dependency group"


@pytest.mark.slow
def test_the_sbom_attestation_is_refused_under_another_key(
    signed_service: Pushed, key_b: KeyPair
) -> None:
    with pytest.raises(sign.SignError, match="refused"):
        sign.verify_attestation(signed_service.reference, key_b.public)


# --- key custody ---------------------------------------------------------------------------


def test_the_committed_public_key_is_a_cosign_p256_key() -> None:
    key = load_pem_public_key(sign.PUBLIC_KEY.read_bytes())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == "secp256r1"


def test_no_private_key_is_tracked_by_git() -> None:
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "grep", "-lE", r"^-----BEGIN ([A-Z]+ )*PRIVATE KEY-----$"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert tracked.returncode == 1, f"private keys in git: {tracked.stdout.split()}"
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "-q", str(sign.LOCAL_KEY)], check=False
    )
    assert ignored.returncode == 0, f"{sign.LOCAL_KEY} is not ignored by git"


def test_a_generated_private_key_is_readable_by_its_owner_only(key_a: KeyPair) -> None:
    assert key_a.private.stat().st_mode & 0o777 == 0o600
    assert key_a.private.read_text().startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")


def test_a_cosign_package_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    pin = cosign.load_pin()
    (tmp_path / pin.deb_name).write_bytes(b"not the pinned package")
    with pytest.raises(cosign.CosignError) as refused:
        cosign.install(home=tmp_path, pin=pin)
    assert "sha256 mismatch" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert not (tmp_path / pin.deb_name).exists()
    assert not (tmp_path / "root").exists()
