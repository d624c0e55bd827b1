"""A local webhook receiver over real HTTP: records every request, answers from a plan."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when the request arrived


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client killed mid-request (the crash test) is expected, not news


class Receiver:
    """`plan(path, [500, 500, 200])` answers those statuses in turn; the last one sticks.
    Unplanned paths answer 200. A 3xx answer redirects to `/target`."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.received: list[Received] = []
        self.before_answer: Any = None  # called with each request before it is answered
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests it was answering at one time
        self._plans: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                with receiver._lock:
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                try:
                    self._answer()
                finally:
                    with receiver._lock:
                        receiver.in_flight -= 1

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = receiver._record(
                    Received(
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                        time.time(),
                    )
                )
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.before_answer is not None:
                    receiver.before_answer(receiver.received[-1])
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/target")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _record(self, r: Received) -> int:
        with self._lock:
            self.received.append(r)
            plan = self._plans.get(r.path)
            if not plan:
                return 200
            return plan.pop(0) if len(plan) > 1 else plan[0]

    def plan(self, path: str, statuses: list[int]) -> None:
        with self._lock:
            self._plans[path] = list(statuses)

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
