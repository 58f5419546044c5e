"""The IAM policy documents of the workload identities, built in code from plain strings.

Least privilege: each Allow names its actions (no ``*``) and only the resources its workload
serves: one Secrets Manager path, one bucket prefix, one KMS key, one cluster's identity
provider and service account. :func:`scope_problems` is the check the tests run on every
document the program registers (and on a deliberately widened one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Document = dict[str, Any]

VERSION = "2012-10-17"
SECRETS_READ = (
    "secretsmanager:GetSecretValue",
    "secretsmanager:DescribeSecret",
    "secretsmanager:ListSecretVersionIds",
)
OBJECT_WRITE = ("s3:PutObject", "s3:GetObject", "s3:DeleteObject")
BUCKET_LIST = ("s3:ListBucket", "s3:GetBucketLocation")
KMS_DATA = ("kms:GenerateDataKey", "kms:Decrypt")


def _document(*statements: Document) -> Document:
    return {"Version": VERSION, "Statement": list(statements)}


def _allow(sid: str, actions: Sequence[str], resources: Sequence[str], **more: Any) -> Document:
    statement = {"Sid": sid, "Effect": "Allow", "Action": list(actions)}
    return statement | {"Resource": list(resources), **more}


def secret_path_arn(region: str, account: str, key_prefix: str) -> str:
    """Every secret under ``key_prefix/`` (Secrets Manager appends ``-<6 chars>`` to names)."""
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{key_prefix}/*"


def secrets_reader(secret_path: str) -> Document:
    """External Secrets: read the secrets of one path."""
    return _document(_allow("ReadSecretPath", SECRETS_READ, [secret_path]))


def prefix_writer(bucket_arn: str, prefix: str, key_arn: str) -> Document:
    """Backups: objects of one prefix of one bucket, its listing, the bucket's KMS key."""
    return _document(
        _allow("ObjectsOfPrefix", OBJECT_WRITE, [f"{bucket_arn}/{prefix}/*"]),
        _allow(
            "ListPrefix",
            BUCKET_LIST,
            [bucket_arn],
            Condition={"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}},
        ),
        _allow("BucketKey", KMS_DATA, [key_arn]),
    )


def bucket_objects(bucket_arn: str, key_arn: str) -> Document:
    """Loki: the objects of its own bucket (chunks, index, delete requests), the bucket's
    listing, the bucket's KMS key."""
    return _document(
        _allow("ObjectsOfBucket", OBJECT_WRITE, [f"{bucket_arn}/*"]),
        _allow("ListBucket", BUCKET_LIST, [bucket_arn]),
        _allow("BucketKey", KMS_DATA, [key_arn]),
    )


def web_identity_trust(provider_arn: str, issuer: str, namespace: str, account: str) -> Document:
    """IRSA: only ``namespace``'s service account ``account``, through the cluster's issuer."""
    host = issuer.removeprefix("https://")
    return _document(
        {
            "Sid": "ServiceAccount",
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{host}:sub": f"system:serviceaccount:{namespace}:{account}",
                    f"{host}:aud": "sts.amazonaws.com",
                }
            },
        }
    )


def service_trust(service: str) -> Document:
    """An AWS service (EKS, EC2) assumes the role."""
    return _document(
        {
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole",
        }
    )


def tls_only(bucket_arn: str) -> Document:
    """Bucket policy: any request without TLS is denied."""
    return _document(
        {
            "Sid": "TlsOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def scope_problems(document: Document, allowed_resources: Sequence[str]) -> list[str]:
    """What widens an identity policy: an Allow with a ``*`` in an action, a ``NotAction`` or
    ``NotResource``, or a resource other than ``allowed_resources`` (exact strings)."""
    problems: list[str] = []
    if document.get("Version") != VERSION:
        problems.append(f"Version {document.get('Version')!r}, not {VERSION}")
    for index, statement in enumerate(_listed(document.get("Statement", []))):
        where = f"Statement[{index}]"
        if statement.get("Effect") != "Allow":
            problems.append(f"{where}: an identity policy allows only")
            continue
        for key in ("NotAction", "NotResource", "Principal"):
            if key in statement:
                problems.append(f"{where}: {key} not allowed")
        actions = _listed(statement.get("Action", []))
        problems += [f"{where}: wildcard action {a!r}" for a in actions if "*" in a]
        if not actions:
            problems.append(f"{where}: no action")
        for resource in _listed(statement.get("Resource", [])):
            if resource not in allowed_resources:
                problems.append(f"{where}: resource {resource!r} outside its scope")
    return problems
