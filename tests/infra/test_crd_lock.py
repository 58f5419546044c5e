"""The CRD schemas as a declared, pinned, verified input: ``infra/crds.lock`` and ``make crds``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from cap_ops import crds
from cap_verifier.typed_yaml import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SMALL = ("PrometheusRule", "ClusterImagePolicy")  # two small files, one serving two versions


@pytest.fixture(scope="module")
def lock() -> crds.CrdLock:
    return crds.load_lock()


@pytest.fixture(scope="module")
def mirror(lock: crds.CrdLock) -> Path:
    """The verified cache of this checkout: laid out like a mirror (``<group>/<plural>.yaml``)."""
    cache = crds.cache_dir()
    for pin in lock.crds:
        crds.read_cached(pin, cache)  # fails with `make crds` when the cache is not filled
    return cache


def _small_lock(lock: crds.CrdLock, path: Path) -> list[crds.CrdPin]:
    pins = [p for p in lock.crds if p.kind in SMALL]
    data = YAML(typ="safe", pure=True).load((ROOT / "infra" / "crds.lock").read_text())
    data["crds"] = [e for e in data["crds"] if e["kind"] in SMALL]
    YAML(typ="safe", pure=True).dump(data, path)
    return pins


def _make_crds(lock_file: Path, cache: Path, mirror: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, crds.CACHE_ENV: str(cache), crds.MIRROR_ENV: str(mirror)}
    return subprocess.run(
        [sys.executable, "-m", "cap_ops.crds", "--lock", str(lock_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


# --- the lock ----------------------------------------------------------------------------------


def test_lock_pins_every_kind_once_with_its_source(lock: crds.CrdLock) -> None:
    assert len(lock.crds) == len({(p.group, p.kind) for p in lock.crds}) == 31
    for pin in lock.crds:
        assert pin.url == crds.RAW_URL.format(project=pin.project, tag=pin.tag, path=pin.path)
    # Every project is pinned at one release.
    releases = {(p.project, p.tag) for p in lock.crds}
    assert len(releases) == len({p.project for p in lock.crds})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda e: e.update(sha256="0" * 63), "crds[0].sha256: Expected `str` matching"),
        (lambda e: e.update(mirror="x"), "crds[0].mirror: unknown key"),
        (lambda e: e.pop("tag"), "crds[0].tag: required key is missing"),
        (lambda e: e.update(tag="v0.0.1"), "crds[0].url: expected https://"),
        (lambda e: e.update(size=0), "crds[0].size: Expected `int` >= 1"),
    ],
)
def test_bad_lock_fails_with_one_line(tmp_path: Path, edit: object, message: str) -> None:
    yaml = YAML(typ="safe", pure=True)
    data = yaml.load((ROOT / "infra" / "crds.lock").read_text())
    edit(data["crds"][0])  # type: ignore[operator]
    bad = tmp_path / "crds.lock"
    yaml.dump(data, bad)
    with pytest.raises(ConfigError) as raised:
        crds.load_lock(bad)
    text = str(raised.value)
    assert "\n" not in text
    assert text.startswith(f"{bad}: {message}"), text


def test_lock_listing_a_kind_twice_fails(tmp_path: Path) -> None:
    yaml = YAML(typ="safe", pure=True)
    data = yaml.load((ROOT / "infra" / "crds.lock").read_text())
    data["crds"].append(data["crds"][0])
    bad = tmp_path / "crds.lock"
    yaml.dump(data, bad)
    with pytest.raises(ConfigError, match=r"crds\[31\]\.kind: GatewayClass .* listed twice"):
        crds.load_lock(bad)


# --- make crds ---------------------------------------------------------------------------------


def test_make_crds_fills_a_cache_from_a_mirror(
    lock: crds.CrdLock, mirror: Path, tmp_path: Path
) -> None:
    pins = _small_lock(lock, tmp_path / "small.lock")
    cache = tmp_path / "cache"
    done = _make_crds(tmp_path / "small.lock", cache, mirror)
    assert done.returncode == 0, done.stderr
    assert "2 pinned files verified" in done.stdout
    for pin in pins:
        assert crds.read_cached(pin, cache) == (mirror / pin.relpath).read_bytes()
    # The kubeconform / CRDs-catalog layout: one JSON schema per served version.
    kubeconform = cache / "kubeconform"
    schemas = sorted(p.relative_to(kubeconform).as_posix() for p in kubeconform.rglob("*.json"))
    assert schemas == [
        "monitoring.coreos.com/prometheusrule_v1.json",
        "policy.sigstore.dev/clusterimagepolicy_v1alpha1.json",
        "policy.sigstore.dev/clusterimagepolicy_v1beta1.json",
    ]
    rule = json.loads((cache / "kubeconform" / schemas[0]).read_text())
    assert rule["required"] == ["spec"]
    assert "groups" in rule["properties"]["spec"]["properties"]
    # A second run fetches nothing and verifies everything.
    again = _make_crds(tmp_path / "small.lock", cache, mirror)
    assert again.returncode == 0, again.stderr
    assert "(0 fetched)" in again.stdout


def test_make_crds_refuses_a_tampered_cached_file(
    lock: crds.CrdLock, mirror: Path, tmp_path: Path
) -> None:
    pins = _small_lock(lock, tmp_path / "small.lock")
    cache = tmp_path / "cache"
    assert _make_crds(tmp_path / "small.lock", cache, mirror).returncode == 0
    _flip_one_byte(cache / pins[0].relpath)
    done = _make_crds(tmp_path / "small.lock", cache, mirror)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert f"{pins[0].relpath}: sha256 mismatch in {cache / pins[0].relpath}" in done.stderr
    with pytest.raises(crds.CrdError, match="sha256 mismatch"):
        crds.read_cached(pins[0], cache)


def test_make_crds_refuses_a_tampered_mirror_and_writes_nothing(
    lock: crds.CrdLock, mirror: Path, tmp_path: Path
) -> None:
    pins = _small_lock(lock, tmp_path / "small.lock")
    bad_mirror = tmp_path / "mirror"
    for pin in pins:
        (bad_mirror / pin.group).mkdir(parents=True)
        (bad_mirror / pin.relpath).write_bytes((mirror / pin.relpath).read_bytes())
    _flip_one_byte(bad_mirror / pins[0].relpath)
    cache = tmp_path / "cache"
    done = _make_crds(tmp_path / "small.lock", cache, bad_mirror)
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        f"expected {pins[0].sha256}, got {crds.sha256((bad_mirror / pins[0].relpath).read_bytes())}"
    )
    assert not (cache / pins[0].relpath).exists()


def test_make_crds_without_mirror_or_network_names_the_way_out(
    lock: crds.CrdLock, tmp_path: Path
) -> None:
    empty_mirror = tmp_path / "mirror"
    empty_mirror.mkdir()
    _small_lock(lock, tmp_path / "small.lock")
    done = _make_crds(tmp_path / "small.lock", tmp_path / "cache", empty_mirror)
    assert done.returncode == 1
    assert "cannot read" in done.stderr
    assert done.stderr.count("\n") == 1


def test_schema_missing_from_the_cache_fails_with_the_command(
    lock: crds.CrdLock, tmp_path: Path
) -> None:
    with pytest.raises(crds.CrdError, match=r"not in the CRD cache .*: run `make crds`"):
        crds.read_cached(lock.crds[0], tmp_path)
