"""Log lines: readable on a terminal, JSON lines otherwise (ours and the standard library's,
such as uvicorn's), and the demo's per-document events left out below debug level."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import logging, structlog
from parley.kit.logging import configure_logging, quiet_tenant
configure_logging("info", {fmt!r})
quiet_tenant("t-demo")
log = structlog.get_logger("x")
log.info("demo.visible", tenant_id="t-other")
log.info("knowledge.ingest.done", tenant_id="t-demo", chunks=3)
log.info("knowledge.ingest.done", tenant_id="t-other", chunks=4)
with structlog.contextvars.bound_contextvars(quiet=True):
    log.info("tenant.created", tenant_id="t-new")
logging.getLogger("uvicorn.error").warning("a stdlib record")
"""


def _run(fmt: str, *, tty: bool) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    args = [sys.executable, "-c", SCRIPT.format(fmt=fmt)]
    if not tty:
        return subprocess.run(
            args, env=env, capture_output=True, text=True, timeout=60, check=True
        ).stderr
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, env=env, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(60)
    os.close(leader)
    return b"".join(chunks).decode()


def test_json_lines_when_not_a_terminal_for_ours_and_the_standard_librarys() -> None:
    lines = [json.loads(line) for line in _run("auto", tty=False).splitlines() if line]
    events = [e["event"] for e in lines]
    assert events == ["demo.visible", "knowledge.ingest.done", "a stdlib record"]
    assert lines[1]["tenant_id"] == "t-other"  # only the quiet workspace's are left out
    assert lines[2]["logger"] == "uvicorn.error"
    assert lines[2]["level"] == "warning"


def test_readable_lines_on_a_terminal_and_json_when_asked() -> None:
    out = _run("auto", tty=True)
    assert "demo.visible" in out
    assert "a stdlib record" in out
    assert not any(line.lstrip().startswith("{") for line in out.splitlines() if line.strip())
    forced = _run("json", tty=True)
    assert all(json.loads(line)["event"] for line in forced.splitlines() if line.strip())
