"""Problem codes as sentences a person understands, and pydantic errors as field messages.

The console shows the same errors the API returns (same classes, same codes); this is only
their wording. A code missing here falls back to the error's own detail.
"""

from __future__ import annotations

from pydantic import ValidationError

from parley.kit.errors import ParleyError

MESSAGES: dict[str, str] = {
    "invalid_credentials": "That email and password do not match an account.",
    "email_taken": "An account with this email already exists. Sign in instead?",
    "invalid_email": "That does not look like an email address.",
    "rate_limited": "Too many attempts. Wait a minute, then try again.",
    "csrf_failed": "This form expired. Reload the page and try again.",
    "forbidden": "Your role in this workspace does not allow this. Ask an admin.",
    "tenant_suspended": "This workspace is suspended. Contact the platform administrator.",
    "tenant_not_found": "This workspace does not exist, or you are not a member of it.",
    "not_found": "We could not find that. It may have been deleted.",
    "bot_not_found": "This bot does not exist (or was deleted).",
    "version_not_found": "This version does not exist.",
    "version_not_draft": "Only a draft can be edited; start a new draft from the published one.",
    "version_already_published": "This version is already the published one.",
    "knowledge_source_not_found": "This knowledge source does not exist.",
    "knowledge_source_busy": "This source is being indexed right now. Try again in a moment.",
    "unknown_knowledge_source": "One of the chosen knowledge sources no longer exists.",
    "channel_not_found": "This channel does not exist.",
    "invitation_not_found": (
        "This invitation link is not valid any more (used, revoked or expired)."
    ),
    "invitation_email_mismatch": (
        "This invitation was sent to another email address. Sign in with that account."
    ),
    "already_member": "You are already a member of this workspace.",
    "last_owner": "A workspace needs at least one owner.",
    "unsafe_url": "That address points to a private network, which is not allowed.",
    "unsupported_file_type": (
        "This file type is not supported. Use PDF, Word, HTML, Markdown or text."
    ),
    "file_too_large": "The file is too large.",
    "empty_file": "The file is empty.",
    "provider_error": "The AI provider did not answer. Check the provider key and model.",
    "telegram_rejected": "Telegram refused the token. Copy it again from @BotFather.",
    "telegram_unavailable": "Telegram did not answer. Try again in a moment.",
    "origin_not_allowed": "The widget is not allowed on this site.",
    "sign_in_required": "Please sign in.",
}

FIELD_TYPES: dict[str, str] = {
    "missing": "This field is required.",
    "string_too_short": "This field is required.",
    "string_too_long": "This is too long.",
    "string_pattern_mismatch": "This is not in the expected format.",
    "greater_than_equal": "This number is too small.",
    "less_than_equal": "This number is too large.",
    "float_parsing": "Enter a number.",
    "int_parsing": "Enter a whole number.",
    "value_error": "This value is not valid.",
    "too_long": "Too many entries.",
    "literal_error": "Choose one of the options offered.",
    "enum": "Choose one of the options offered.",
    "url_parsing": "Enter a full address, starting with https://.",
}


def problem_message(error: ParleyError) -> str:
    return MESSAGES.get(error.code, error.detail)


def field_errors(exc: ValidationError) -> dict[str, str]:
    """{form field: message}; nested locations join with dots (`handoff.keywords`)."""
    out: dict[str, str] = {}
    for err in exc.errors():
        loc = [str(part) for part in err["loc"] if not isinstance(part, int)]
        name = ".".join(loc) or "form"
        if name in out:
            continue
        if err["type"] == "value_error":
            text = str(err.get("msg", "")).removeprefix("Value error, ")
            out[name] = text[:1].upper() + text[1:] if text else FIELD_TYPES["value_error"]
        else:
            out[name] = FIELD_TYPES.get(err["type"], str(err.get("msg", "Not valid.")))
    return out
