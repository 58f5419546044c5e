"""An S3-compatible server for tests: moto's, on a free loopback port, stopped afterwards."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from cap_ops.devkit.net import free_port
from cap_ops.poll import wait_until

REGION = "eu-central-1"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3-compatible server on a free loopback port, one per session (each test makes a
    bucket of its own: :func:`new_bucket`); the AWS environment to reach it."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing-access-key",
        "AWS_SECRET_ACCESS_KEY": "testing-secret-key-not-for-logs",
        "AWS_DEFAULT_REGION": REGION,
    }
    try:
        wait_until(
            lambda: httpx.get(env["AWS_ENDPOINT_URL"], timeout=1).status_code < 500,
            30,
            "moto",
            0.1,
            ignore=(httpx.HTTPError,),
        )
        yield env
    finally:
        process.terminate()
        process.wait(timeout=30)


def new_bucket() -> str:
    return f"cap-backups-{uuid.uuid4().hex[:12]}"


def s3_client(env: dict[str, str], bucket: str | None = None) -> Any:
    """A boto3 S3 client of the server of ``env``; ``bucket`` is created when given."""
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=REGION,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    if bucket is not None:
        location = {"LocationConstraint": REGION}
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration=location)
    return client
