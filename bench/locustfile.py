"""Locust scenarios against a running runtime-worker service.

    locust -f bench/locustfile.py --host http://127.0.0.1:8080 ApiUser
    locust -f bench/locustfile.py --host … --headless -u 50 -r 50 -t 30s --csv out MixedUser

- `ApiUser`: proxy-mode GETs and POSTs (sprinters) — `worker serve bench.scenario_app.handler`.
- `InvokeUser`: the Invoke API (`POST /2015-03-31/functions/{name}/invocations`).
- `MixedUser`: 90 % sprinter routes, 10 % two-second marathon routes (`GET /report`).
- `EmbedUser`: inference, `POST /embed` — `worker serve handlers.embed.handler`.

A 429 is the service shedding load as designed: it is reported as its own entry,
"<name> [throttled]", and not as a failure. Other non-2xx answers are failures.
"""

from __future__ import annotations

import json
import random
from typing import Any

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

WORDS = [
    "the", "service", "answers", "every", "request", "quickly", "while", "the", "batcher",
    "groups", "embeddings", "of", "concurrent", "users", "into", "one", "forward", "pass",
]  # fmt: skip


def _checked(user: FastHttpUser, method: str, path: str, name: str, **kwargs: Any) -> None:
    with user.client.request(method, path, name=name, catch_response=True, **kwargs) as resp:
        if resp.status_code == 429:
            resp.request_meta["name"] = f"{name} [throttled]"
            resp.success()
        elif 200 <= resp.status_code < 300:
            resp.success()
        else:
            resp.failure(f"HTTP {resp.status_code}")


class ApiUser(FastHttpUser):
    """Proxy-mode API calls: sprinters."""

    wait_time = between(0.0, 0.01)

    @task(4)
    def get_item(self) -> None:
        _checked(self, "GET", f"/items/{random.randint(1, 1000)}", "GET /items/{id}")

    @task(1)
    def create_item(self) -> None:
        body = json.dumps({"name": "widget", "price": random.randint(1, 100)})
        _checked(
            self,
            "POST",
            "/items",
            "POST /items",
            data=body,
            headers={"content-type": "application/json"},
        )


class InvokeUser(FastHttpUser):
    """The Lambda Invoke API, as an SDK's `invoke` would call it."""

    wait_time = between(0.0, 0.01)

    @task
    def invoke(self) -> None:
        body = json.dumps({"action": "lookup", "id": random.randint(1, 1000)})
        _checked(
            self,
            "POST",
            "/2015-03-31/functions/app/invocations",
            "invoke",
            data=body,
            headers={"content-type": "application/json"},
        )


class MixedUser(FastHttpUser):
    """90 % sprinter routes, 10 % two-second marathon routes."""

    wait_time = between(0.0, 0.01)

    @task(9)
    def sprinter(self) -> None:
        _checked(self, "GET", f"/items/{random.randint(1, 1000)}", "sprinter GET /items/{id}")

    @task(1)
    def marathon(self) -> None:
        _checked(self, "GET", "/report", "marathon GET /report")


class EmbedUser(FastHttpUser):
    """Sentence embeddings: one sentence of 6-48 words per request."""

    wait_time = between(0.0, 0.05)

    @task
    def embed(self) -> None:
        text = " ".join(random.choices(WORDS, k=random.randint(6, 48)))
        _checked(
            self,
            "POST",
            "/embed",
            "POST /embed",
            data=json.dumps({"text": text}),
            headers={"content-type": "application/json"},
        )
