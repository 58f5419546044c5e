"""Image admission: policy-controller's ClusterImagePolicy trusts the committed key only, matches
the environment's repository by digest only (under policy-controller's own glob rules), and
enforces wherever the image is pinned by digest; how each environment's pulls authenticate.

The policies of ``infra/policies/supply_chain.py`` (ORR 2.4-01, 2.4-05, 2.4-06, 2.4-07) run on
every environment and against a bad input in test_policies.py; this file holds what they cannot
see: the committed key file, the glob's meaning, and the mode as the image reference changes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import infra.policies.manifests as pol
import pytest
from config_edits import changed
from infra.artefacts import COSIGN_PUBLIC_KEY, Artefacts
from infra.artefacts import load as load_artefacts
from infra.config import ENVIRONMENTS, EnvConfig
from infra.model import admission, model

from cap_verifier.typed_yaml import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32


def upstream_glob(glob: str) -> re.Pattern[str]:
    """policy-controller v0.15.1's ``glob.Compile`` (pkg/apis/glob/glob.go), translated as is:
    ``.`` is literal, ``**`` any characters, ``*`` any characters but ``/``, whole string."""
    assert re.fullmatch(r"[a-zA-Z0-9\-_:/*.@]+", glob), glob
    pattern = glob.replace(".", r"\.").replace("**", "#").replace("*", "[^/]*")
    return re.compile("^" + pattern.replace("#", ".*") + "$")


def _policy(cfg: EnvConfig, artefacts: Artefacts) -> dict[str, Any]:
    return pol.one(model(cfg, artefacts), "ClusterImagePolicy")


@pytest.mark.orr("2.4-01")
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_policy_trusts_the_committed_key_alone(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    spec = _policy(configs[env], artefacts)["spec"]
    committed = (ROOT / COSIGN_PUBLIC_KEY).read_text(encoding="ascii")
    # A key authority alone: no keyless identity, no static pass, and no transparency log
    # (without ctlog, policy-controller verifies a key's signature offline).
    assert spec["authorities"] == [
        {"name": admission.AUTHORITY, "key": {"data": committed, "hashAlgorithm": "sha256"}}
    ]


@pytest.mark.orr("2.4-05", "2.4-07")
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_glob_matches_digests_of_the_environments_repository_only(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    cfg = configs[env]
    repository = cfg.image.repository
    host, _, path = repository.partition("/")
    (glob,) = [g["glob"] for g in _policy(cfg, artefacts)["spec"]["images"]]
    matches = upstream_glob(glob).match
    assert matches(f"{repository}@{DIGEST}")
    for other in (
        f"{repository}:0.11.0",  # a tag
        f"{repository}:latest",
        f"{repository}/sidecar@{DIGEST}",  # a sub-path
        f"{repository}-fork@{DIGEST}",
        f"evil.example.net/{path}@{DIGEST}",  # another registry
        f"{host}.evil.example.net/{path}@{DIGEST}",
        f"docker.io/library/python@{DIGEST}",
    ):
        assert not matches(other), other


@pytest.mark.orr("2.4-01")
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_enforced_wherever_the_image_is_a_digest(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    cfg = configs[env]
    pinned = changed(cfg, {"image.digest": DIGEST, "image.tag": None})
    assert _policy(pinned, artefacts)["spec"]["mode"] == "enforce"
    if cfg.image.tag is not None:
        # Dev by tag: the verdict is a warning while iterating.
        assert env == "dev"
        assert _policy(cfg, artefacts)["spec"]["mode"] == "warn"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_only_the_service_namespace_opts_in(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    namespaces = pol.find(model(configs[env], artefacts), "Namespace")
    included = [
        n["metadata"]["name"]
        for n in namespaces
        if n["metadata"]["labels"].get("policy.sigstore.dev/include") == "true"
    ]
    assert included == [configs[env].namespace]


@pytest.mark.orr("2.4-06")
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_pulls_authenticate_by_node_role_on_eks_and_by_pull_secret_elsewhere(
    configs: dict[str, EnvConfig], env: str, artefacts: Artefacts
) -> None:
    """EKS: the node role reads ECR (test_cloud_resources, 2.4-05), so no credentials are
    rendered; other clusters: the ServiceAccount lists the Secret External Secrets makes."""
    cfg = configs[env]
    objs = model(cfg, artefacts)
    account = pol.one(objs, "ServiceAccount", "cap-verifier")
    pull_secrets = [
        e for e in pol.find(objs, "ExternalSecret") if e["metadata"]["name"].endswith("image-pull")
    ]
    if cfg.cluster.provider == "eks":
        assert "imagePullSecrets" not in account
        assert pull_secrets == []
    else:
        (secret,) = pull_secrets
        assert account["imagePullSecrets"] == [{"name": secret["metadata"]["name"]}]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a key\n",
        # A private key is refused too: only the public half may be committed.
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIE5S\n-----END EC PRIVATE KEY-----\n",
    ],
)
def test_a_broken_key_file_is_a_config_error(tmp_path: Path, text: str) -> None:
    for folder in ("alerts", "dashboards"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    key = tmp_path / COSIGN_PUBLIC_KEY
    key.parent.mkdir()
    key.write_text(text, encoding="ascii")
    with pytest.raises(ConfigError, match=re.escape(COSIGN_PUBLIC_KEY)):
        load_artefacts(tmp_path)
    key.write_text((ROOT / COSIGN_PUBLIC_KEY).read_text(encoding="ascii"), encoding="ascii")
    assert load_artefacts(tmp_path).cosign_public_key == key.read_text(encoding="ascii")
