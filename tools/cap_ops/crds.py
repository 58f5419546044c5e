"""The pinned CRD schemas: a declared input, like the packages of ``uv.lock``.

``infra/crds.lock`` lists every CustomResourceDefinition the custom resources are validated
against (upstream project, release tag, source path, URL, sha256). ``make crds`` (``python -m
cap_ops.crds``) fills the git-ignored cache ``.cache/crds/<group>/<plural>.yaml`` from a mirror
directory (``CRD_MIRROR``, same layout) or by downloading the pinned URLs, and refuses any file
whose sha256 differs, in one line. It also writes each served version's schema as
``.cache/crds/kubeconform/<group>/<kind>_<version>.json``, the layout kubeconform and the public
CRDs catalog use, so ``kubeconform -schema-location default -schema-location
'.cache/crds/kubeconform/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json'`` works.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import msgspec
from msgspec import Meta, Struct
from ruamel.yaml.constructor import SafeConstructor

from cap_verifier.typed_yaml import ConfigError, load_typed, yaml_loader

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "infra" / "crds.lock"
MIRROR_ENV = "CRD_MIRROR"
CACHE_ENV = "CRD_CACHE"
FILL_COMMAND = "make crds"
RAW_URL = "https://raw.githubusercontent.com/{project}/{tag}/{path}"
DOWNLOAD_TIMEOUT = 30.0
KUBECONFORM = "kubeconform"

Name = Annotated[str, Meta(pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")]


class CrdPin(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One CRD file at one upstream release."""

    kind: Annotated[str, Meta(pattern=r"^[A-Z][A-Za-z0-9]*$")]
    group: Name
    plural: Annotated[str, Meta(pattern=r"^[a-z0-9]+$")]
    project: Annotated[str, Meta(pattern=r"^[\w.-]+/[\w.-]+$")]
    tag: Annotated[str, Meta(min_length=1)]
    path: Annotated[str, Meta(pattern=r"^[\w./-]+\.ya?ml$")]
    url: Annotated[str, Meta(pattern=r"^https://")]
    sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, Meta(gt=0)]

    @property
    def relpath(self) -> str:
        """Where the file sits in a mirror and in the cache."""
        return f"{self.group}/{self.plural}.yaml"


class CrdLock(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    version: Literal[1]
    crds: tuple[CrdPin, ...]

    def __post_init__(self) -> None:
        seen: set[tuple[str, str]] = set()
        for index, pin in enumerate(self.crds):
            where = f"crds[{index}]"
            expected = RAW_URL.format(project=pin.project, tag=pin.tag, path=pin.path)
            if pin.url != expected:
                raise ValueError(f"{where}.url: expected {expected} (from project, tag and path)")
            if (pin.group, pin.kind) in seen:
                raise ValueError(f"{where}.kind: {pin.kind} of {pin.group} is listed twice")
            seen.add((pin.group, pin.kind))

    def pin(self, group: str, kind: str) -> CrdPin | None:
        """The pinned CRD that defines ``kind`` in ``group``, if any."""
        return next((p for p in self.crds if (p.group, p.kind) == (group, kind)), None)


def load_lock(path: Path = LOCK) -> CrdLock:
    return load_typed(path, CrdLock)


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or ROOT / ".cache" / "crds")


class CrdError(Exception):
    """A CRD file that is missing or does not match its pin; ``str()`` is one line."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verified(pin: CrdPin, data: bytes, source: str) -> bytes:
    """``data`` if it is the pinned file, else a one-line :class:`CrdError`."""
    digest = sha256(data)
    if digest != pin.sha256:
        raise CrdError(
            f"{pin.relpath}: sha256 mismatch in {source}: expected {pin.sha256}, got {digest}"
        )
    return data


def read_cached(pin: CrdPin, cache: Path | None = None) -> bytes:
    """The cached, verified bytes of ``pin``; a missing file names the command that fills it."""
    path = (cache or cache_dir()) / pin.relpath
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CrdError(
            f"{pin.relpath}: not in the CRD cache {path.parent.parent}: run `{FILL_COMMAND}`"
            f" (with {MIRROR_ENV}=DIR where the network cannot reach {pin.url})"
        ) from None
    return verified(pin, data, str(path))


def _fetch(pin: CrdPin, mirror: Path | None) -> tuple[bytes, str]:
    if mirror is not None:
        path = mirror / pin.relpath
        try:
            return path.read_bytes(), str(path)
        except OSError as exc:
            raise CrdError(f"{pin.relpath}: cannot read {path}: {exc.strerror}") from None
    try:
        response = httpx.get(pin.url, timeout=DOWNLOAD_TIMEOUT, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise CrdError(
            f"{pin.relpath}: cannot download {pin.url} ({type(exc).__name__}); "
            f"set {MIRROR_ENV}=DIR to a mirror laid out as <group>/<plural>.yaml"
        ) from None
    return response.content, pin.url


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _CrdConstructor(SafeConstructor):
    """Reads a bare ``=`` as the string ``=``, as Kubernetes does (the parser would otherwise
    resolve it to YAML 1.1's "value" tag); AlertmanagerConfig's matchType enum holds one."""


_CrdConstructor.add_constructor("tag:yaml.org,2002:value", SafeConstructor.construct_yaml_str)


def parse(data: bytes) -> dict[str, Any]:
    """A CRD document, read as Kubernetes reads it."""
    yaml = yaml_loader()
    yaml.Constructor = _CrdConstructor
    loaded: dict[str, Any] = yaml.load(data)
    return loaded


def parsed_path(pin: CrdPin, cache: Path) -> Path:
    """The CRD of ``pin`` as JSON, beside its YAML: parsed once by ``make crds`` (the pure-Python
    YAML parser takes seconds for these 10 MB; JSON loads in milliseconds)."""
    return cache / pin.group / f"{pin.plural}.json"


def _parsed_document(pin: CrdPin, data: bytes) -> str:
    """The JSON cache entry: the parsed CRD, bound to the sha256 of the bytes it came from."""
    return json.dumps({"sha256": pin.sha256, "crd": parse(data)}, sort_keys=True)


def read_parsed(pin: CrdPin, cache: Path | None = None) -> dict[str, Any]:
    """The parsed CRD of ``pin`` from the verified cache (its YAML checked against the pin)."""
    cache = cache or cache_dir()
    read_cached(pin, cache)
    path = parsed_path(pin, cache)
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise CrdError(
            f"{pin.relpath}: no parsed copy in the CRD cache: run `{FILL_COMMAND}`"
        ) from None
    if entry.get("sha256") != pin.sha256:
        raise CrdError(f"{pin.relpath}: the parsed copy is of another file: run `{FILL_COMMAND}`")
    crd: dict[str, Any] = entry["crd"]
    return crd


def kubeconform_schemas(pin: CrdPin, document: dict[str, Any]) -> dict[str, str]:
    """``<group>/<kind>_<version>.json`` → JSON schema, for every served version."""
    crd = msgspec.convert(document, _CrdDocument)
    return {
        f"{pin.group}/{pin.kind.lower()}_{v.name}.json": json.dumps(
            v.schema_["openAPIV3Schema"], indent=2, sort_keys=True
        )
        + "\n"
        for v in crd.spec.versions
        if v.served
    }


class _CrdVersion(Struct, frozen=True):
    name: str
    served: bool
    schema_: dict[str, dict[str, object]] = msgspec.field(name="schema")


class _CrdSpec(Struct, frozen=True):
    versions: tuple[_CrdVersion, ...]


class _CrdDocument(Struct, frozen=True):
    spec: _CrdSpec


def _parsed_current(pin: CrdPin, path: Path) -> bool:
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("sha256") == pin.sha256)
    except (OSError, ValueError):
        return False


@dataclass
class FillReport:
    verified: int = 0
    fetched: int = 0


def fill(
    lock: CrdLock, cache: Path, mirror: Path | None, pins: Iterable[CrdPin] | None = None
) -> FillReport:
    """Make ``cache`` hold every pinned file, verified; stop at the first mismatch."""
    report = FillReport()
    for pin in lock.crds if pins is None else pins:
        target = cache / pin.relpath
        fetch = not target.exists()
        if not fetch:
            data = verified(pin, target.read_bytes(), str(target))
        else:
            fetched, source = _fetch(pin, mirror)
            data = verified(pin, fetched, source)
            _write_atomically(target, data)
            report.fetched += 1
        parsed = parsed_path(pin, cache)
        if fetch or not _parsed_current(pin, parsed):
            document = _parsed_document(pin, data)
            _write_atomically(parsed, document.encode("utf-8"))
            for name, text in kubeconform_schemas(pin, json.loads(document)["crd"]).items():
                _write_atomically(cache / KUBECONFORM / name, text.encode("utf-8"))
        report.verified += 1
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make crds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, default=LOCK, help="the lock file (%(default)s)")
    args = parser.parse_args(argv)
    mirror_value = os.environ.get(MIRROR_ENV)
    mirror = Path(mirror_value) if mirror_value else None
    if mirror is not None and not mirror.is_dir():
        print(f"crds: {MIRROR_ENV}={mirror} is not a directory", file=sys.stderr)
        return 2
    cache = cache_dir()
    try:
        report = fill(load_lock(args.lock), cache, mirror)
    except (ConfigError, CrdError) as exc:
        print(f"crds: {exc}", file=sys.stderr)
        return 1
    print(f"crds: {report.verified} pinned files verified in {cache} ({report.fetched} fetched)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
