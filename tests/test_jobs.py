from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from worker import jobs
from worker.errors import LambdaError
from worker.jobs import Job

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_request_ids_are_uuid_shaped_and_unique() -> None:
    ids = [jobs.new_request_id() for _ in range(10_000)]
    assert all(UUID.match(rid) for rid in ids)
    assert len(set(ids)) == len(ids)


def test_reseed_changes_the_prefix() -> None:
    before = jobs.new_request_id()
    jobs.reseed()
    after = jobs.new_request_id()
    assert before[:24] != after[:24]
    assert UUID.match(after)


def test_a_spent_counter_starts_a_new_prefix_and_keeps_the_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jobs, "_counter", itertools.count(jobs._LAST))
    last = jobs.new_request_id()
    following = jobs.new_request_id()
    assert UUID.match(last) and UUID.match(following)
    assert last.endswith(str(jobs._LAST))
    assert following[:24] != last[:24]
    assert following.endswith(str(jobs._FIRST))


def test_reply_calls_the_callback_a_job_was_made_with() -> None:
    seen: list[tuple[Any, LambdaError | None]] = []

    def reply(result: Any, error: LambdaError | None) -> str | None:
        seen.append((result, error))
        return error.error_type if error else None

    job = Job({"a": 1}, reply)
    assert job.reply({"ok": True}, None) is None
    failure = LambdaError("Runtime.Boom", "no")
    assert job.reply(None, failure) == "Runtime.Boom"
    assert seen == [({"ok": True}, None), (None, failure)]
    assert UUID.match(job.request_id)  # one is made when the source has none


def test_a_source_subclass_answers_by_its_own_reply() -> None:
    class Answered(Job):
        __slots__ = ("got",)

        def reply(self, result: Any, error: LambdaError | None) -> str | None:
            self.got = result
            return None

    job = Answered({}, None, "rid")
    assert job.reply(42, None) is None
    assert job.got == 42 and job.request_id == "rid"
