"""The storage port: the local default and the S3 adapter against a real S3-speaking server
(moto's server mode over HTTP), with the same behaviour from both."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.kit.db import TenantId
from parley.knowledge.storage import MissingObject, Storage, key_for, tenant_prefix
from parley.knowledge.storage.local import LocalStorage


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _s3(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Storage:
    import boto3

    from parley.knowledge.storage.s3 import S3Storage

    # Credentials come from boto3's usual chain; the local server accepts any.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"parley-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return S3Storage(bucket, "parley/", endpoint)


@pytest.fixture(params=["local", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "files")
    return _s3(request.getfixturevalue("s3_endpoint"), monkeypatch)


async def test_put_get_delete_and_tenant_purge(store: Storage) -> None:
    a, b = TenantId(uuid.uuid4()), TenantId(uuid.uuid4())
    ka1, ka2, kb = key_for(a, uuid.uuid4()), key_for(a, uuid.uuid4()), key_for(b, uuid.uuid4())
    for key, data in ((ka1, b"one"), (ka2, b"two"), (kb, b"other tenant")):
        await store.put(key, data)
    assert await store.get(ka1) == b"one"
    await store.put(ka1, b"one, replaced")
    assert await store.get(ka1) == b"one, replaced"
    await store.delete(ka2)
    with pytest.raises(MissingObject):
        await store.get(ka2)
    assert await store.delete_prefix(tenant_prefix(a)) == 1
    with pytest.raises(MissingObject):
        await store.get(ka1)
    assert await store.get(kb) == b"other tenant"


@pytest.mark.parametrize("key", ["../etc/passwd", "/etc/passwd", "a/../../x", "x y", ""])
async def test_local_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    store = LocalStorage(tmp_path / "files")
    with pytest.raises(ValueError, match="unsafe"):
        await store.put(key, b"x")
    assert not (tmp_path / "etc").exists()
