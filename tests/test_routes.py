"""Route keys for web apps: the app's own path templates, else id-like segments collapsed."""

from __future__ import annotations

import pytest
from starlette.middleware.cors import CORSMiddleware

from tests.apps import asgi_apps, wsgi_apps
from worker.sources import routes
from worker.sources.routes import Templates, app_routes, generic


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/items/42", "/items/{item_id}"),
        ("/items", "/items"),
        ("/state", "/state"),
        ("/stream", "/stream"),
        ("/docs", "/docs"),  # FastAPI's own routes count too
        ("/nowhere/123", "/nowhere/{id}"),  # no route: the generic rule
    ],
)
def test_fastapi_paths_take_the_apps_templates(path: str, template: str) -> None:
    assert Templates(asgi_apps.app).of(path) == template


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/users/ada", "/users/{user_id}"),
        ("/api/things/lamp", "/api/things/{thing}"),  # a mount of routes
        ("/shop/orders/17", "/shop/orders/{order_id}"),  # a mounted app
        ("/shop/other/5", "/shop/{path}"),  # inside a mount, no route of its own
    ],
)
def test_starlette_mounts_join_their_prefix(path: str, template: str) -> None:
    assert Templates(asgi_apps.starlette_app).of(path) == template


def test_middleware_is_looked_through() -> None:
    wrapped = CORSMiddleware(asgi_apps.starlette_app, allow_origins=["*"])
    assert app_routes(wrapped) is not None
    assert Templates(wrapped).of("/users/bob") == "/users/{user_id}"


def test_apps_without_starlette_routes_use_the_generic_rule() -> None:
    assert app_routes(wsgi_apps.flask_app) is None
    assert app_routes(asgi_apps.raw_scope) is None
    assert Templates(wsgi_apps.flask_app).of("/orders/981/lines/3") == "/orders/{id}/lines/{id}"


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/", "/"),
        ("/health", "/health"),
        ("/users/123", "/users/{id}"),
        ("/users/123/posts/7", "/users/{id}/posts/{id}"),
        ("/o/0b2e6c1e-3d4f-4a5b-9c8d-7e6f5a4b3c2d", "/o/{id}"),
        ("/blob/deadbeefcafebabe0123", "/blob/{id}"),
        ("/t/AbC123xyz_789-tokenvalue", "/t/{id}"),
        ("/v2/search", "/v2/search"),  # short words with digits stay
        ("/pages/about-us-and-more-text", "/pages/about-us-and-more-text"),  # no digit: a word
    ],
)
def test_the_generic_rule_collapses_id_like_segments(path: str, template: str) -> None:
    assert generic(path) == template


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "CACHE_SIZE", 8)
    templates = Templates(asgi_apps.app)
    for n in range(100):
        assert templates.of(f"/items/{n}") == "/items/{item_id}"
        assert len(templates._cache) <= 8
