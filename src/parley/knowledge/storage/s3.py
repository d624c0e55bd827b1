"""Originals in any S3-compatible object store (AWS S3, MinIO, Ceph, R2) through boto3.

boto3 is synchronous; calls run in a thread so they never block the event loop. Credentials
come from boto3's usual chain (environment, config files, instance roles)."""

from __future__ import annotations

import asyncio
from typing import Any

from parley.knowledge.storage.errors import MissingObject


class S3Storage:
    name = "s3"

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None) -> None:
        # lazy: heavy optional: boto3 only with PARLEY_STORAGE=s3
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3}),
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(
            self._client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data
        )

    async def get(self, key: str) -> bytes:

        def read() -> bytes:
            try:
                obj = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            except self._client.exceptions.NoSuchKey as exc:
                raise MissingObject(key) from exc
            return bytes(obj["Body"].read())

        return await asyncio.to_thread(read)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket, Key=self._key(key))

    async def delete_prefix(self, prefix: str) -> int:
        def remove() -> int:
            removed = 0
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
                    removed += len(keys)
            return removed

        return await asyncio.to_thread(remove)

    async def list_keys(self, prefix: str) -> list[str]:
        def walk() -> list[str]:
            keys: list[str] = []
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                keys += [str(o["Key"])[len(self.prefix) :] for o in page.get("Contents", [])]
            return sorted(keys)

        return await asyncio.to_thread(walk)
