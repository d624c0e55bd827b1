"""`parley serve` as a newcomer starts it: a real subprocess on a free port with its own data
directory (and so its own embedded PostgreSQL), its stdout and stderr collected line by line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Serve:
    proc: subprocess.Popen[str]
    data_dir: Path
    port: int
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for_banner(self, timeout: float = 120) -> str:
        """The banner (printed once the server accepts connections), as one string."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = "".join(self.stdout)
            if "Answers" in text and (self.proc.poll() is not None or text.endswith("\n")):
                time.sleep(0.2)  # the rest of the banner, written in the same call
                return "".join(self.stdout)
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"no banner (exit {self.proc.poll()}):\n{''.join(self.stdout)}\n"
            + "".join(self.stderr)[-4000:]
        )

    def wait_until_idle(self, timeout: float = 120) -> None:
        """Until the job queue is empty (the demo's documents are indexed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                queue = httpx.get(f"{self.base_url}/readyz", timeout=5).json()["checks"]["queue"]
            except httpx.TimeoutException:  # a loaded machine: ask again until the deadline
                continue
            if queue["queued"] == 0 and queue["running"] == 0:
                return
            time.sleep(0.3)
        raise AssertionError("the demo's ingestion did not finish")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def postmaster_pid(self) -> int | None:
        pid_file = self.data_dir / "pg" / "postmaster.pid"
        return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def _pump(stream: object, sink: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        sink.append(line)


def start_serve(data_dir: Path, *args: str, **env: str) -> Serve:
    port = free_port()
    environ = {
        **os.environ,
        "PARLEY_DATA_DIR": str(data_dir),
        # Keyword-only keeps the start quick (the local model's load is measured in bench/).
        "PARLEY_EMBEDDINGS": "none",
        "PYTHONPATH": str(ROOT / "src"),
        **env,
    }
    for name in ("PARLEY_LOG_FORMAT", "DATABASE_URL", "REDIS_URL", "PORT"):
        if name not in env:
            environ.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley", "serve", "--port", str(port), *args],
        cwd=data_dir,  # no .env of the checkout
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    serve = Serve(proc, data_dir, port)
    for stream, sink in ((proc.stdout, serve.stdout), (proc.stderr, serve.stderr)):
        threading.Thread(target=_pump, args=(stream, sink), daemon=True).start()
    return serve


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def json_lines(lines: list[str]) -> list[dict[str, object]]:
    """Every line parsed as JSON (fails on the first that is not)."""
    return [json.loads(line) for line in lines if line.strip()]
