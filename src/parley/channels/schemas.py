"""Channel bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from parley.bots.schemas import Theme
from parley.channels.origins import InvalidOrigin, validate_entry


def _check_origins(value: list[str]) -> list[str]:
    out: list[str] = []
    for entry in value:
        try:
            canonical = validate_entry(entry)
        except InvalidOrigin as exc:
            raise ValueError(str(exc)) from exc
        if canonical not in out:
            out.append(canonical)
    return out


class WidgetChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["widget"]
    bot_id: uuid.UUID
    name: str = Field(default="Website widget", min_length=1, max_length=120)
    allowed_origins: list[str] = Field(min_length=1, max_length=50)
    theme: Theme | None = None

    _origins = field_validator("allowed_origins")(_check_origins)


class ChannelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=120)
    bot_id: uuid.UUID | None = None
    allowed_origins: list[str] | None = Field(default=None, min_length=1, max_length=50)
    theme: Theme | None = None

    _origins = field_validator("allowed_origins")(
        lambda v: _check_origins(v) if v is not None else None
    )


class ChannelOut(BaseModel):
    id: uuid.UUID
    type: str
    bot_id: uuid.UUID
    name: str
    widget_key: str | None
    allowed_origins: list[str]
    theme: Theme
    created_at: datetime
    updated_at: datetime
