"""Where original files are kept: a small port with a local-filesystem default and an
S3-compatible adapter. Keys are built from our own ids only (`key_for`), never from a file
name a user sent, so no key can escape its tenant's prefix."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Protocol

from parley.knowledge.storage.errors import MissingObject as MissingObject
from parley.knowledge.storage.local import LocalStorage

if TYPE_CHECKING:
    from parley.kit.db import TenantId
    from parley.kit.runtime import Runtime
    from parley.settings import Settings


class Storage(Protocol):
    name: str

    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...

    async def delete_prefix(self, prefix: str) -> int: ...

    async def list_keys(self, prefix: str) -> list[str]:
        """Every stored key under `prefix` ("" for all), sorted (exports, backups, checks)."""
        ...


def key_for(tenant_id: TenantId, source_id: uuid.UUID) -> str:
    return f"{tenant_id}/{source_id}/original"


def tenant_prefix(tenant_id: TenantId) -> str:
    return f"{tenant_id}/"


def storage_for(runtime: Runtime) -> Storage:
    """The configured storage, one per process."""
    return runtime.client("storage", lambda: _build(runtime.settings))


def storage_from_settings(s: Settings) -> Storage:
    """The configured storage without a runtime (operator commands such as restore)."""
    return _build(s)


def _build(s: Settings) -> Storage:
    if s.parley_storage == "s3":
        # lazy: heavy optional: boto3 only with PARLEY_STORAGE=s3
        from parley.knowledge.storage.s3 import S3Storage

        if not s.parley_s3_bucket:
            raise RuntimeError("PARLEY_S3_BUCKET is required when PARLEY_STORAGE=s3")
        return S3Storage(s.parley_s3_bucket, s.parley_s3_prefix, s.parley_s3_endpoint_url)

    return LocalStorage(s.data_dir / "files")
