"""One real uvicorn server for the security tests that need real HTTP (event streams ending,
trickled bodies), with the hardening settings turned down so the tests wait little."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DatabaseUnderTest, LiveServer, make_settings, serve_app

RECHECK_SECONDS = 0.3
BODY_READ_TIMEOUT = 1.0
STREAMS_PER_TOKEN = 2


@pytest.fixture(scope="session")
def tuned_server(
    data_dir: Path, fake_openai: Any, test_db: DatabaseUnderTest
) -> Iterator[LiveServer]:
    settings = make_settings(
        data_dir,
        openai_base_url=fake_openai.base_url,
        openai_api_key="sk-test",
        parley_widget_stream_recheck_seconds=RECHECK_SECONDS,
        parley_body_read_timeout_seconds=BODY_READ_TIMEOUT,
        parley_widget_streams_per_token=STREAMS_PER_TOKEN,
    )
    with serve_app(settings, test_db.app_url) as server:
        yield server
