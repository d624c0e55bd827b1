"""A real API server process for the two-process limit test: the app as `parley serve` builds
it, on the port given, with the test's settings."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(url: str, data_dir: str, overrides: str, port: int) -> None:
    import uvicorn

    from parley.app import create_app
    from tests.conftest import make_settings

    settings = make_settings(Path(data_dir), **json.loads(overrides))
    app = create_app(settings, database_url=url)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
