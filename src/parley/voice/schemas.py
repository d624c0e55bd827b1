"""Voice bodies: the workspace's voice settings (the widget's voice stream is SSE, described
in docs/voice.md and the route's OpenAPI entry)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class VoiceWorkspaceSettings(BaseModel):
    retain_audio: bool = Field(description="Visitors' recordings are kept with the voice ledger.")
    voice_seconds_this_month: float = Field(
        description="`voice_seconds` usage: speech heard plus speech made, this calendar month."
    )


class VoiceWorkspaceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retain_audio: bool
