"""A local Telegram Bot API server speaking the real wire protocol: `POST /bot<token>/<method>`
with a JSON body, answering `{"ok": true, "result": …}` or
`{"ok": false, "error_code": …, "description": …}`. Every call is recorded.

Implemented methods: `setWebhook`, `deleteWebhook`, `getWebhookInfo`, `sendMessage`,
`getFile` (a `File` with `file_path`, for files put there with `add_file`), the file download
`GET /file/bot<token>/<file_path>`, and `sendVoice` (multipart/form-data with the OGG note as
`voice`; the uploads are kept in `voices`).
Knobs: `rejected_tokens` (answer 401 Unauthorized), `blocked_chats` (sendMessage answers 403
"bot was blocked by the user"), `fail_sends` (the next N sendMessage calls answer 502).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.threaded import ThreadedServer


@dataclass
class Call:
    token: str
    method: str
    body: dict[str, Any]


@dataclass
class FakeTelegram:
    port: int = 0
    calls: list[Call] = field(default_factory=list)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected_tokens: set[str] = field(default_factory=set)
    blocked_chats: set[int] = field(default_factory=set)
    fail_sends: int = 0
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # file_id → (path, data)
    voices: list[bytes] = field(default_factory=list)
    _next_message_id: int = 1

    def __post_init__(self) -> None:
        if not self.port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = int(s.getsockname()[1])
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self.api, methods=["POST"]),
                Route("/file/bot{token}/{path:path}", self.download, methods=["GET"]),
            ]
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._runner = ThreadedServer(self.app, self.port)
        self._runner.start()

    def stop(self) -> None:
        if getattr(self, "_runner", None) is not None:
            self._runner.stop()

    def calls_of(self, method: str, token: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == method and (token is None or c.token == token)]

    @staticmethod
    def _error(code: int, description: str) -> JSONResponse:
        return JSONResponse(
            {"ok": False, "error_code": code, "description": description}, status_code=code
        )

    def add_file(self, file_id: str, data: bytes) -> str:
        path = f"voice/file_{len(self.files)}.oga"
        self.files[file_id] = (path, data)
        return path

    async def download(self, request: Request) -> Response:
        path = request.path_params["path"]
        for stored_path, data in self.files.values():
            if stored_path == path:
                return Response(data, media_type="application/octet-stream")
        return self._error(404, "Not Found")

    async def _send_voice(self, token: str, request: Request) -> JSONResponse:
        form = await request.form()
        upload: Any = form.get("voice")
        data = await upload.read() if upload is not None and not isinstance(upload, str) else b""
        chat_id = int(str(form.get("chat_id", "0")))
        self.calls.append(Call(token, "sendVoice", {"chat_id": chat_id, "bytes": len(data)}))
        if not data:
            return self._error(400, "Bad Request: there is no voice in the request")
        self.voices.append(data)
        message_id = self._next_message_id
        self._next_message_id += 1
        return JSONResponse(
            {
                "ok": True,
                "result": {
                    "message_id": message_id,
                    "date": int(time.time()),
                    "chat": {"id": chat_id, "type": "private"},
                    "voice": {
                        "file_id": f"voice-{message_id}",
                        "file_unique_id": f"u{message_id}",
                        "duration": 1,
                        "mime_type": "audio/ogg",
                        "file_size": len(data),
                    },
                },
            }
        )

    async def api(self, request: Request) -> JSONResponse:
        token = request.path_params["token"]
        method = request.path_params["method"]
        if method == "sendVoice" and token not in self.rejected_tokens:
            return await self._send_voice(token, request)
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "Bad Request: invalid JSON")
        self.calls.append(Call(token, method, body))
        if token in self.rejected_tokens:
            return self._error(401, "Unauthorized")
        if method == "setWebhook":
            if not str(body.get("url", "")).startswith(("http://", "https://")):
                return self._error(400, "Bad Request: bad webhook: invalid URL")
            self.webhooks[token] = body
            return JSONResponse({"ok": True, "result": True, "description": "Webhook was set"})
        if method == "deleteWebhook":
            self.webhooks.pop(token, None)
            return JSONResponse({"ok": True, "result": True})
        if method == "getWebhookInfo":
            hook = self.webhooks.get(token, {})
            return JSONResponse(
                {"ok": True, "result": {"url": hook.get("url", ""), "pending_update_count": 0}}
            )
        if method == "getFile":
            found = self.files.get(str(body.get("file_id")))
            if found is None:
                return self._error(400, "Bad Request: invalid file_id")
            return JSONResponse(
                {
                    "ok": True,
                    "result": {
                        "file_id": body["file_id"],
                        "file_unique_id": "u" + str(body["file_id"]),
                        "file_size": len(found[1]),
                        "file_path": found[0],
                    },
                }
            )
        if method == "sendMessage":
            if self.fail_sends > 0:
                self.fail_sends -= 1
                return self._error(502, "Bad Gateway")
            chat_id = body.get("chat_id")
            if chat_id in self.blocked_chats:
                return self._error(403, "Forbidden: bot was blocked by the user")
            if not isinstance(body.get("text"), str) or not body["text"]:
                return self._error(400, "Bad Request: message text is empty")
            message_id = self._next_message_id
            self._next_message_id += 1
            return JSONResponse(
                {
                    "ok": True,
                    "result": {
                        "message_id": message_id,
                        "date": int(time.time()),
                        "chat": {"id": chat_id, "type": "private"},
                        "text": body["text"],
                    },
                }
            )
        return self._error(404, "Not Found")
