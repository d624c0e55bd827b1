"""A local HTTP receiver for webhook-channel replies: records every delivery (headers, raw
body), and can be told to fail the next N deliveries or to hang on some paths. Runnable as its
own process (`python -m tests.fakes.webhook_receiver PORT LOGFILE`), one JSON line per
delivery."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.threaded import ThreadedServer


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    port: int = 0
    log_file: Path | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    fail_next: dict[str, int] = field(default_factory=dict)  # path -> failures still to give
    fail_status: int = 500
    hang_paths: set[str] = field(default_factory=set)  # deliveries to these never answer

    def __post_init__(self) -> None:
        if not self.port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = int(s.getsockname()[1])
        self.app = Starlette(routes=[Route("/{path:path}", self.receive, methods=["POST"])])

    def url(self, path: str = "hook") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def start(self) -> None:
        self._runner = ThreadedServer(self.app, self.port)
        self._runner.start()

    def stop(self) -> None:
        if getattr(self, "_runner", None) is not None:
            self._runner.stop()

    def for_path(self, path: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.path == path]

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        if request.path_params["path"] in self.hang_paths:
            await asyncio.sleep(30)
        delivery = Delivery(request.path_params["path"], dict(request.headers), body)
        self.deliveries.append(delivery)
        if self.log_file is not None:
            with self.log_file.open("a") as f:
                line = {"path": delivery.path, "headers": delivery.headers, "body": body.decode()}
                f.write(json.dumps(line) + "\n")
        path = request.path_params["path"]
        if self.fail_next.get(path, 0) > 0:
            self.fail_next[path] -= 1
            return Response(status_code=self.fail_status)
        return Response(status_code=204)


if __name__ == "__main__":
    receiver = WebhookReceiver(port=int(sys.argv[1]), log_file=Path(sys.argv[2]))
    uvicorn.run(receiver.app, host="127.0.0.1", port=receiver.port, log_level="error")
