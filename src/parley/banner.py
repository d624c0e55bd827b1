"""What `parley serve` prints for a person once the server is up: what started, where, and the
one-time demo login. All its wording is here, so a new surface changes one place; nothing in
it may promise a page the server does not serve."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from parley import __version__

LOGIN_LABEL = "Console login"
"""The demo account signs in to the console (or through `POST /v1/auth/login`)."""
LOGIN_HINT = "sign in at {base}/console/login (the API: POST /v1/auth/login)"
WIDTH = 19


def _as_typed(path: Path, name: str) -> str:
    """`name` when that is what the PATH finds, else the path relative to the working
    directory when it lies below it, else the absolute path."""
    found = shutil.which(name)
    if found is not None and Path(found).resolve() == path.resolve():
        return name
    rel = os.path.relpath(path.resolve(), Path.cwd())
    return str(path.resolve()) if rel.startswith("..") else rel


def command_name() -> str:
    """How the person who started this server runs the CLI: `parley` when it is on the PATH,
    else the path they used (`.venv/bin/parley` after `make run`), or `<python> -m parley`."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "__main__.py":
        return f"{_as_typed(Path(sys.executable), 'python')} -m parley"
    if argv0.name != "parley":
        return "parley"
    return _as_typed(argv0, "parley")


@dataclass
class Banner:
    base: str
    database: str  # "embedded PostgreSQL (<data dir>)" or "external PostgreSQL"
    database_log: Path | None
    retrieval: str  # "hybrid (local embeddings, …)" or "keyword-only (…)"
    answers: str = "extractive (offline: quotes your documents; see docs/bots.md)"
    demo: bool = False
    login_email: str | None = None
    password: str | None = None  # only on the start that created the account
    knowledge_pages: int = 0
    extra: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        rows: list[tuple[str, str]] = []
        rows.append(("Console", f"{self.base}/console"))
        if self.demo:
            rows.append(("Demo page", f"{self.base}/demo"))
        rows += [("API docs", f"{self.base}/docs"), ("Health", f"{self.base}/readyz")]
        groups = [rows]
        if self.demo and self.login_email:
            login = [(LOGIN_LABEL, self.login_email)]
            if self.password is not None:
                login.append(("Password", f"{self.password}   (shown once, not stored in clear)"))
            else:
                login.append(("Password", "printed once, when the account was created"))
                login.append(
                    ("", f"lost it? {command_name()} reset-password --email {self.login_email}")
                )
            login.append(("", LOGIN_HINT.format(base=self.base)))
            groups.append(login)
        about = [("Database", self.database)]
        if self.database_log is not None:
            about.append(("Database log", str(self.database_log)))
        about += [("Retrieval", self.retrieval), ("Answers", self.answers)]
        if self.demo and self.knowledge_pages:
            about.append(
                ("Demo knowledge", f"{self.knowledge_pages} pages of Parley's docs, indexing now")
            )
        groups.append(about + self.extra)
        out = [f"Parley {__version__} is running on {self.base}  (stop: Ctrl-C)"]
        for group in groups:
            out.append("")
            out += [f"  {label:<{WIDTH}}{value}".rstrip() for label, value in group]
        return out

    def text(self) -> str:
        return "\n".join(self.lines()) + "\n"


def retrieval_line(setting: str, resolved: str, model: str) -> str:
    """How retrieval will run, and why (`auto` says what it resolved to)."""
    why = f"PARLEY_EMBEDDINGS={setting}"
    if resolved == "none":
        return f"keyword-only (BM25; {why})"
    if resolved == "local":
        return f"hybrid: BM25 + local embeddings {model} ({why})"
    return f"hybrid: BM25 + {resolved} embeddings {model} ({why})"
