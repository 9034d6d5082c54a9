"""Route keys for web apps: the path template a request's path stands for.

A web app's requests reach the lanes with the route key `METHOD TEMPLATE`, so that
`/items/42` and `/items/43` share one profile (`worker.profiles`) rather than filling the
profile table with ids. For an app with Starlette's routing (Starlette, FastAPI, and any
middleware around them) the template is the app's own: the first route whose pattern
matches the path, through mounts. For any other app, and paths no route matches, id-like
segments (numbers, UUIDs, long hex or token strings) become `{id}`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

#: Paths whose template is remembered; the cache starts over when it is full, since
#: paths carry ids and are unbounded.
CACHE_SIZE = 4096
#: How many `.app` wrappers (middleware) are looked through for the app's routes.
UNWRAP_DEPTH = 8

_ID = re.compile(
    r"\d+"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,}"
    r"|(?=[^/]*\d)[A-Za-z0-9_\-]{20,}"
)


def generic(path: str) -> str:
    """The path with its id-like segments as `{id}`."""
    parts = path.split("/")
    changed = False
    for i, part in enumerate(parts):
        if part and _ID.fullmatch(part):
            parts[i] = "{id}"
            changed = True
    return "/".join(parts) if changed else path


class Templates:
    """Path → template for one app, cached."""

    def __init__(self, app: Any) -> None:
        self.routes = app_routes(app)
        self._cache: dict[str, str] = {}

    def of(self, path: str) -> str:
        template = self._cache.get(path)
        if template is None:
            template = None if self.routes is None else _match(self.routes, path)
            if template is None:
                template = generic(path)
            cache = self._cache
            if len(cache) >= CACHE_SIZE:
                cache.clear()
            cache[path] = template
        return template


def app_routes(app: Any) -> Sequence[Any] | None:
    """The routes of an app with Starlette's routing (looking through middleware that
    keeps the app it wraps as `.app`), or None."""
    for _ in range(UNWRAP_DEPTH):
        if app is None:
            return None
        routes = getattr(app, "routes", None)
        if isinstance(routes, list) and any(hasattr(r, "path_regex") for r in routes):
            return routes
        app = getattr(app, "app", None)
    return None


def _match(routes: Sequence[Any], path: str) -> str | None:
    for route in routes:
        regex = getattr(route, "path_regex", None)
        if regex is None:
            continue  # a Host route, a websocket one without a pattern, …
        found = regex.match(path)
        if found is None:
            continue
        inner = getattr(route, "routes", None)
        if inner is None:
            return str(getattr(route, "path_format", None) or getattr(route, "path", path))
        # A mount: its own prefix, then the template of the rest in its routes.
        prefix = str(getattr(route, "path", ""))
        rest = "/" + found.groupdict().get("path", "")
        template = _match(inner, rest) if inner else None
        return prefix + (template if template is not None else "/{path}")
    return None
