"""Form posts to the services' own request models, and their failures back to the form.

A failed action re-renders the form with what the user typed and a message per field (from
the same validation the API runs), or one message for the whole form (a problem code).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from parley.console.messages import field_errors, problem_message
from parley.console.session import CSRF_FIELD
from parley.kit.errors import ParleyError

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


@dataclass
class FormState:
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    message: str | None = None

    @property
    def failed(self) -> bool:
        return bool(self.errors or self.message)

    def get(self, name: str, default: Any = "") -> Any:
        return self.values.get(name, default)


async def read_form(request: Request) -> dict[str, Any]:
    """Single fields as strings, repeated fields (checkboxes, multi-selects) as lists."""
    form = await request.form()
    out: dict[str, Any] = {}
    for key in form:
        if key == CSRF_FIELD:
            continue
        values = [v for v in form.getlist(key) if isinstance(v, str)]
        out[key] = (
            values if len(values) > 1 or key.endswith("[]") else (values[0] if values else "")
        )
    return {k.removesuffix("[]"): v for k, v in out.items()}


def parse(model: type[M], data: dict[str, Any], state: FormState) -> M | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        # A rule of the whole model (no field to put it beside) is the form's message.
        whole = errors.pop("form", None)
        if whole is not None:
            state.message = whole
        state.errors.update(errors)
        return None


async def attempt(
    session: AsyncSession, state: FormState, action: Callable[[], Awaitable[T]]
) -> T | None:
    """Run a service call in a savepoint: on a domain error, undo its writes (the request's
    transaction still commits what came before, and the tenant context stays bound) and put
    the error's message on the form."""
    try:
        async with session.begin_nested():
            return await action()
    except ParleyError as exc:
        state.message = problem_message(exc)
        state.errors.update(
            {".".join(str(p) for p in e["loc"]): e["message"] for e in exc.extra.get("errors", [])}
        )
        return None


async def submit(
    session: AsyncSession,
    state: FormState,
    model: type[M],
    data: dict[str, Any],
    action: Callable[[M], Awaitable[T]],
) -> T | None:
    """`parse` then `attempt`: the body the API's model accepts, handed to the service call."""
    body = parse(model, data, state)
    if body is None:
        return None
    return await attempt(session, state, lambda: action(body))
