"""Settings: every one documented in .env.example; invalid ones fail at start with a message."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from parley.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented_in_env_example() -> None:
    documented = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    )
    fields = {name.upper() for name in Settings.model_fields}
    assert fields - documented == set()
    assert documented - fields == set()


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="postgresql"):
        Settings(_env_file=None, database_url="mysql://x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="32 characters"):
        Settings(_env_file=None, parley_secret_keys="short")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="PARLEY_SECRET_KEYS"):
        Settings(_env_file=None, parley_env="production")  # type: ignore[call-arg]
    s = Settings(
        _env_file=None,
        database_url="postgres://u:p@h/db",
        parley_cors_origins="https://a.example, https://b.example",
    )  # type: ignore[call-arg]
    assert s.database_url is not None
    assert s.database_url.get_secret_value().startswith("postgresql+asyncpg://")
    assert s.parley_cors_origins == ["https://a.example", "https://b.example"]


def test_cli_reports_invalid_settings_clearly(tmp_path: Path) -> None:
    env = {**os.environ, "PARLEY_WORKER_CONCURRENCY": "nope", "PARLEY_DATA_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "parley", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "PARLEY_WORKER_CONCURRENCY" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_plans_parse_from_json_and_unknown_plans_are_unlimited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = Settings(_env_file=None)  # type: ignore[call-arg]
    assert default.plan_limits("free").monthly_conversations == 1_000
    assert default.plan_limits("free").monthly_tokens == 1_000_000
    assert default.plan_limits("enterprise").monthly_conversations is None
    assert default.plan_limits("enterprise").monthly_tokens is None

    monkeypatch.setenv(
        "PARLEY_PLANS", '{"pro": {"monthly_conversations": 50000, "monthly_tokens": null}}'
    )
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.plan_limits("pro").monthly_conversations == 50_000
    assert s.plan_limits("pro").monthly_tokens is None
    assert s.plan_limits("free").monthly_conversations is None  # the table was replaced

    for bad, message in (
        ("not json", "must be JSON"),
        ('{"Pro": {}}', "plan name"),
        ('{"pro": {"monthly_tokens": 0}}', "greater than or equal to 1"),
        ('{"pro": {"monthly_tokns": 5}}', "Extra inputs"),
    ):
        monkeypatch.setenv("PARLEY_PLANS", bad)
        with pytest.raises(ValidationError, match=message):
            Settings(_env_file=None)  # type: ignore[call-arg]


# --- empty values and the embeddings default (issue 14) ---------------------------------


def test_an_empty_variable_means_unset_for_every_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in Settings.model_fields:  # the defaults, not what this shell sets (CI: REDIS_URL)
        monkeypatch.delenv(name.upper(), raising=False)
    defaults = Settings(_env_file=None).model_dump()  # type: ignore[call-arg]
    for name in Settings.model_fields:
        monkeypatch.setenv(name.upper(), "")
    assert Settings(_env_file=None).model_dump() == defaults  # type: ignore[call-arg]
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper())
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{name.upper()}=\n" for name in Settings.model_fields))
    assert Settings(_env_file=env_file).model_dump() == defaults  # type: ignore[call-arg]


def test_a_wrong_url_is_refused_with_its_name() -> None:
    for bad in ("localhost:6379", "http://cache:6379", "redis://"):
        with pytest.raises(ValidationError, match="redis://"):
            Settings(_env_file=None, redis_url=bad)  # type: ignore[call-arg]
    ok = Settings(_env_file=None, redis_url="rediss://cache:6380/1")  # type: ignore[call-arg]
    assert ok.redis_url is not None
    with pytest.raises(ValidationError, match="http"):
        Settings(_env_file=None, parley_public_url="parley.example.com")  # type: ignore[call-arg]
    s = Settings(_env_file=None, parley_public_url="https://chat.example.com/")  # type: ignore[call-arg]
    assert s.parley_public_url == "https://chat.example.com"


@pytest.mark.parametrize(
    ("env", "message"), [({"REDIS_URL": ""}, None), ({"REDIS_URL": "cache:6379"}, "REDIS_URL")]
)
def test_the_cli_takes_an_empty_value_and_names_a_wrong_one(
    tmp_path: Path, env: dict[str, str], message: str | None
) -> None:
    """`parley worker`'s settings step runs before any database; a wrong value stops there with
    one line, an empty one gets past it (and then fails on the refused DATABASE_URL below)."""
    base = {**os.environ, "PARLEY_DATA_DIR": str(tmp_path), "DATABASE_URL": "mysql://x"}
    proc = subprocess.run(
        [sys.executable, "-m", "parley", "migrate"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "DATABASE_URL" in proc.stderr
    if message is None:
        assert "REDIS_URL" not in proc.stderr
    else:
        assert f"  {message}: " in proc.stderr


def test_embeddings_auto_resolves_to_the_installed_local_model() -> None:
    from parley.settings import local_embeddings_installed

    installed = local_embeddings_installed("all-MiniLM-L6-v2")
    auto = Settings(_env_file=None)  # type: ignore[call-arg]
    assert auto.parley_embeddings == "auto"
    assert auto.embeddings == ("local" if installed else "none")
    missing = Settings(_env_file=None, parley_embedding_model="/nonexistent/model")  # type: ignore[call-arg]
    assert missing.embeddings == "none"
    for explicit in ("none", "openai", "local"):
        chosen = Settings(_env_file=None, parley_embeddings=explicit)  # type: ignore[call-arg]
        assert chosen.embeddings == explicit
