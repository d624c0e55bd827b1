"""The banner tells a person the command they can type, as they started the server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from parley.banner import Banner, command_name


def _script(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_the_cli_is_named_as_the_person_started_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")
    venv_cli = _script(tmp_path / ".venv" / "bin" / "parley")
    monkeypatch.setattr(sys, "argv", [str(venv_cli), "serve"])
    assert command_name() == ".venv/bin/parley"  # `make run`: below the working directory
    monkeypatch.setenv("PATH", str(venv_cli.parent))
    assert command_name() == "parley"  # an activated venv, or an installed package
    elsewhere = _script(tmp_path.parent / f"{tmp_path.name}-other" / "parley")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "argv", [str(elsewhere), "serve"])
    assert command_name() == str(elsewhere.resolve())
    monkeypatch.setattr(sys, "argv", ["/somewhere/parley/__main__.py", "serve"])
    assert command_name().endswith(" -m parley")


def test_a_lost_demo_password_has_a_way_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/somewhere/parley/__main__.py", "serve"])
    banner = Banner(
        base="http://127.0.0.1:8000",
        database="embedded PostgreSQL",
        database_log=None,
        retrieval="keyword-only",
        demo=True,
        login_email="admin@parley.example.com",
    )
    text = "\n".join(banner.lines())
    assert "printed once, when the account was created" in text
    assert "-m parley reset-password --email admin@parley.example.com" in text
    shown = Banner(**{**banner.__dict__, "password": "s3cret-once"})
    text = "\n".join(shown.lines())
    assert "s3cret-once" in text
    assert "reset-password" not in text
