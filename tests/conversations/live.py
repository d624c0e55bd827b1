"""A background SSE reader for the live inbox tests: collects events, waits for one."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

Event = tuple[str, dict[str, Any], str | None]


@dataclass
class Stream:
    events: list[Event] = field(default_factory=list)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def wait(
        self, match: Callable[[Event], bool], timeout: float = 15.0, what: str = "event"
    ) -> Event:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for event in self.events:
                if match(event):
                    return event
            await asyncio.sleep(0.02)
        raise AssertionError(f"{what} not received; got {[e[0] for e in self.events]}")

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


async def open_stream(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> Stream:
    """Start reading `url` in the background; returns once the server said `connected`."""
    stream = Stream()

    async def read() -> None:
        async with client.stream("GET", url, headers=headers) as resp:
            assert resp.status_code == 200, await resp.aread()
            name, eid, data = None, None, []
            async for line in resp.aiter_lines():
                if line.startswith(": connected"):
                    stream.opened.set()
                elif line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("id: "):
                    eid = line[4:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and name:
                    stream.events.append((name, json.loads("\n".join(data)), eid))
                    name, eid, data = None, None, []

    stream.task = asyncio.create_task(read())
    await asyncio.wait_for(stream.opened.wait(), timeout=15)
    return stream
