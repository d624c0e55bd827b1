"""Voice failures, each a problem+json with a stable code (docs/voice.md lists them)."""

from __future__ import annotations

from typing import Any

from parley.kit.errors import TYPE_BASE, ParleyError


class VoiceError(ParleyError):
    """Base of the voice problems; the code also labels the failures metric."""

    status = 422
    code = "voice_error"
    title = "The audio could not be used"

    def problem(self) -> dict[str, Any]:
        """The problem as an SSE `error` event carries it (the answer has started by then)."""
        return {
            "type": TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }


class EmptyAudio(VoiceError):
    code = "audio_empty"
    title = "The audio is empty"


class AudioTooLarge(VoiceError):
    status = 413
    code = "audio_too_large"
    title = "The audio is larger than allowed"


class AudioTooLong(VoiceError):
    status = 413
    code = "audio_too_long"
    title = "The audio is longer than allowed"


class UnsupportedAudio(VoiceError):
    status = 415
    code = "audio_unsupported"
    title = "This audio container is not accepted"


class CorruptAudio(VoiceError):
    code = "audio_corrupt"
    title = "The audio could not be decoded"


class NothingHeard(VoiceError):
    code = "speech_not_recognised"
    title = "No speech was recognised in the audio"


class VoiceDisabled(VoiceError):
    status = 403
    code = "voice_disabled"
    title = "Voice is not turned on for this channel"


class SpeechUnavailable(VoiceError):
    status = 503
    code = "speech_unavailable"
    title = "The speech service is unavailable right now"


class SpeechFailed(Exception):
    """An adapter failed; `retryable` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
