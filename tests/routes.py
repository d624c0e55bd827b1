"""The app's route table, flattened: every (method, path, dependant), for generated tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str
    dependant: Any
    name: str


def _contexts(route: Any) -> Iterator[Any]:
    if isinstance(route, APIRoute):
        yield route
        return
    contexts = getattr(route, "effective_route_contexts", None)
    if contexts is not None:
        yield from contexts()


def api_routes(app: Any) -> list[RouteInfo]:
    out: list[RouteInfo] = []
    for route in app.routes:
        for ctx in _contexts(route):
            dependant = getattr(ctx, "dependant", None)
            if dependant is None:
                continue
            for method in sorted(ctx.methods or ()):
                if method == "HEAD":
                    continue
                out.append(RouteInfo(method, ctx.path, dependant, ctx.name))
    return out


def access_of(dependant: Any) -> Any | None:
    """The `Access` a route declared through its auth dependency, if any."""
    stack = list(dependant.dependencies)
    while stack:
        dep = stack.pop()
        access = getattr(dep.call, "parley_access", None)
        if access is not None:
            return access
        stack.extend(dep.dependencies)
    return None
