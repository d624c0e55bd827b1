"""Bot bodies. The configuration is what a version freezes; the system prompt only ever comes
from here (server side), never from a client."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Provider = Literal["extractive", "openai", "anthropic", "gemini"]
DEFAULT_FALLBACK = (
    "I'm sorry, I don't have information about that yet. "
    "Could you rephrase, or ask about something else?"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Theme(_Strict):
    color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")
    position: Literal["right", "left"] | None = None
    title: str | None = Field(default=None, max_length=80)
    greeting: str | None = Field(default=None, max_length=500)
    handoff_button: bool | None = Field(
        default=None, description="Show the widget's “Talk to a person” button (default on)."
    )


class RetrievalSettings(_Strict):
    top_k: int = Field(default=5, ge=1, le=50, description="Passages given to the model.")
    min_score: float = Field(default=0.0, ge=0, description="Drop passages scoring below this.")


class HandoffRules(_Strict):
    """When a conversation should go to a human (applied by the inbox capability)."""

    keywords: list[str] = Field(default_factory=list, max_length=50)
    on_no_answer: bool = Field(
        default=False, description="Hand off when nothing relevant is found."
    )
    after_fallbacks: int | None = Field(
        default=None,
        ge=1,
        le=20,
        description="Hand off after this many fallback answers in a row.",
    )
    on_negative_feedback: bool = Field(
        default=False, description="Hand off when the visitor rates an answer down."
    )
    message: str = Field(default="I'm connecting you with a member of our team.", max_length=500)


class VoiceSettings(_Strict):
    """How the bot listens and speaks (SPEC C12). The defaults run offline: pocketsphinx and
    eSpeak NG ship inside their wheels; `openai` is any OpenAI-compatible speech server."""

    stt_provider: Literal["pocketsphinx", "openai"] = "pocketsphinx"
    stt_model: str = Field(default="en-us", max_length=120)
    tts_provider: Literal["espeak", "openai"] = "espeak"
    tts_model: str = Field(default="espeak-ng", max_length=120)
    voice: str = Field(default="en-us+f2", max_length=80, pattern=r"^[A-Za-z0-9_+.-]+$")
    language: str = Field(default="en", max_length=16, pattern=r"^[A-Za-z-]+$")
    speed: float = Field(default=1.0, ge=0.5, le=2.0)
    telegram_voice_reply: bool = Field(
        default=False, description="Answer Telegram voice messages with a voice note too."
    )


class BotConfig(_Strict):
    instructions: str = Field(default="You are a helpful assistant.", max_length=20_000)
    provider: Provider = "extractive"
    model: str = Field(default="extractive", max_length=120)
    fallback_models: list[str] = Field(
        default_factory=list,
        max_length=5,
        description="Tried in order when the model fails (same provider).",
    )
    temperature: float = Field(default=0.2, ge=0, le=2)
    max_tokens: int = Field(default=800, ge=16, le=16_000)
    greeting: str = Field(default="Hi! How can I help?", max_length=500)
    fallback_text: str = Field(default=DEFAULT_FALLBACK, max_length=2_000)
    knowledge_source_ids: list[uuid.UUID] | None = Field(
        default=None, description="Sources the bot may use; null means all of the tenant's."
    )
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    handoff: HandoffRules = Field(default_factory=HandoffRules)
    theme: Theme = Field(default_factory=Theme)
    voice: VoiceSettings = Field(default_factory=VoiceSettings)


class BotCreate(_Strict):
    name: str = Field(min_length=1, max_length=120)
    instructions: str | None = Field(default=None, max_length=20_000)
    provider: Provider | None = None
    model: str | None = Field(default=None, max_length=120)
    fallback_models: list[str] | None = Field(default=None, max_length=5)
    greeting: str | None = Field(default=None, max_length=500)
    fallback_text: str | None = Field(default=None, max_length=2_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=16, le=16_000)


class BotUpdate(_Strict):
    """Changing any configuration field publishes a new version (full versioning with drafts
    arrives with the bot-versions capability)."""

    name: str | None = Field(default=None, min_length=1, max_length=120)
    instructions: str | None = Field(default=None, max_length=20_000)
    provider: Provider | None = None
    model: str | None = Field(default=None, max_length=120)
    greeting: str | None = Field(default=None, max_length=500)
    fallback_text: str | None = Field(default=None, max_length=2_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=16, le=16_000)
    knowledge_source_ids: list[uuid.UUID] | None = Field(default=None, max_length=500)
    retrieval: RetrievalSettings | None = None
    handoff: HandoffRules | None = None
    theme: Theme | None = None
    voice: VoiceSettings | None = None


class BotOut(BaseModel):
    id: uuid.UUID
    name: str
    version: int = Field(description="The published version number.")
    version_id: uuid.UUID
    config: BotConfig
    created_at: datetime
    updated_at: datetime


class ConfigChanges(_Strict):
    """Fields to change in a draft; omitted fields keep their current value."""

    instructions: str | None = Field(default=None, max_length=20_000)
    provider: Provider | None = None
    model: str | None = Field(default=None, max_length=120)
    fallback_models: list[str] | None = Field(default=None, max_length=5)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=16, le=16_000)
    greeting: str | None = Field(default=None, max_length=500)
    fallback_text: str | None = Field(default=None, max_length=2_000)
    knowledge_source_ids: list[uuid.UUID] | None = Field(default=None, max_length=500)
    retrieval: RetrievalSettings | None = None
    handoff: HandoffRules | None = None
    theme: Theme | None = None
    voice: VoiceSettings | None = None


class GoldenResult(BaseModel):
    """One golden question run against one version."""

    question_id: uuid.UUID
    question: str
    passed: bool
    failed_checks: list[Literal["source", "passage", "answer", "provider_error"]] = Field(
        description="Which expectations did not hold (empty when it passed)."
    )
    answer: str = Field(description="What the version answered (shortened).")


class GateSide(BaseModel):
    version_id: uuid.UUID
    number: int
    passed: int
    total: int
    pass_rate: float = Field(description="passed / total, 0..1.")
    failing: list[GoldenResult]


class QualityGateResult(BaseModel):
    """The quality gate's verdict on publishing a draft (docs/bots.md "Quality gate")."""

    mode: Literal["block", "warn"]
    outcome: Literal["passed", "warned", "blocked"]
    draft: GateSide
    published: GateSide | None = Field(description="The version that was live when checked.")
    regressions: list[uuid.UUID] = Field(
        description="Golden questions the published version passes and the draft fails."
    )
    checked_at: datetime


class VersionOut(BaseModel):
    id: uuid.UUID
    bot_id: uuid.UUID
    number: int
    status: Literal["draft", "published", "archived"]
    config: BotConfig
    created_at: datetime
    published_at: datetime | None
    quality_gate: QualityGateResult | None = Field(
        default=None,
        description="The quality gate's result recorded when this version was published.",
    )


class FieldChange(BaseModel):
    field: str
    before: object
    after: object


class VersionDiff(BaseModel):
    version_id: uuid.UUID
    against_id: uuid.UUID
    changes: list[FieldChange]
    instructions_diff: str = Field(description="Unified line diff of the instructions.")
    quality_gate: QualityGateResult | None = Field(
        default=None, description="The gate's result recorded on `version_id` when published."
    )
    against_quality_gate: QualityGateResult | None = Field(
        default=None, description="The gate's result recorded on `against_id` when published."
    )
