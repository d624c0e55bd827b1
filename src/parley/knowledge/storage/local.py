"""Originals on the local filesystem under `PARLEY_DATA_DIR/files` (the default)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

from parley.knowledge.storage.errors import MissingObject

_KEY = re.compile(r"^[0-9a-f-]{36}(/[0-9a-f-]{36}(/[a-z]+)?)?/?$")


class LocalStorage:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"unsafe storage key {key!r}")
        return self.root / key

    def _put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # readers see the old file or the whole new one

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, key, data)

    async def get(self, key: str) -> bytes:

        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError as exc:
            raise MissingObject(key) from exc

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await asyncio.to_thread(path.unlink, True)
        for parent in (path.parent,):
            if parent != self.root and parent.exists() and not any(parent.iterdir()):
                parent.rmdir()

    async def delete_prefix(self, prefix: str) -> int:
        path = self._path(prefix.rstrip("/"))
        if not path.exists():
            return 0
        count = sum(1 for p in path.rglob("*") if p.is_file())
        await asyncio.to_thread(shutil.rmtree, path, True)
        return count

    async def list_keys(self, prefix: str) -> list[str]:
        base = self.root if not prefix else self._path(prefix.rstrip("/"))

        def walk() -> list[str]:
            if not base.exists():
                return []
            return sorted(
                p.relative_to(self.root).as_posix()
                for p in base.rglob("*")
                if p.is_file() and p.suffix != ".part"
            )

        return await asyncio.to_thread(walk)
