"""The admission policy of sigstore policy-controller: which images may run in the service's
namespace (ORR 2.4-01, 2.4-05, 2.4-07).

The service namespace opts in with the label :data:`infra.charts.POLICY_INCLUDE_LABEL`; no other
namespace does. There, policy-controller resolves a tag to its digest, refuses an image that is
not a digest, and refuses one that no ClusterImagePolicy matches (``no-match-policy: deny`` in
:data:`infra.charts.POLICY_CONTROLLER`). The one policy here matches only the environment's
repository by digest and admits an image only with a signature made by the committed key
(``keys/cosign.pub``, :mod:`infra.artefacts`): a key authority with no ``ctlog`` verifies the
signature offline, without a transparency log, as ``make sign`` signs (``--tlog-upload=false``).

Key rotation: the new public key is added as a second authority (an image is admitted when any
authority verifies it) before anything is signed with it; the old one goes once no running image
carries only its signature.
"""

from __future__ import annotations

from typing import Literal

from infra.artefacts import Artefacts
from infra.config import EnvConfig
from infra.model.common import APP, Manifest, metadata

POLICY_API = "policy.sigstore.dev/v1beta1"
POLICY_NAME = f"{APP}-signed-by-digest"
AUTHORITY = "cosign-key"
HASH_ALGORITHM = "sha256"

Mode = Literal["enforce", "warn"]


def image_glob(cfg: EnvConfig) -> str:
    """Every digest of the environment's repository, and nothing else.

    policy-controller's ``*`` matches any characters but ``/`` (``:`` included), anchored at
    both ends, against the fully qualified reference: ``<repository>@sha256:*`` matches
    ``<repository>@sha256:<hex>`` only, not another repository, a sub-path or a tag.
    """
    return f"{cfg.image.repository}@sha256:*"


def mode(cfg: EnvConfig) -> Mode:
    """``enforce`` where the image is pinned by digest (always in staging and prod).

    A tag (dev only) may name an image CI built but did not sign, e.g. while iterating: there the
    verdict is a warning on the admission response and in the controller's log, not a refusal.
    The tag is still resolved to a digest and the image still must come from the environment's
    repository, since policy-controller refuses what it cannot resolve or no policy matches.
    """
    return "enforce" if cfg.image.digest is not None else "warn"


def cluster_image_policy(cfg: EnvConfig, artefacts: Artefacts) -> Manifest:
    return {
        "apiVersion": POLICY_API,
        "kind": "ClusterImagePolicy",
        "metadata": metadata(cfg, POLICY_NAME, namespaced=False),
        "spec": {
            "images": [{"glob": image_glob(cfg)}],
            "authorities": [
                {
                    "name": AUTHORITY,
                    "key": {
                        "data": artefacts.cosign_public_key,
                        "hashAlgorithm": HASH_ALGORITHM,
                    },
                }
            ],
            "mode": mode(cfg),
        },
    }


def objects(cfg: EnvConfig, artefacts: Artefacts) -> list[Manifest]:
    return [cluster_image_policy(cfg, artefacts)]
