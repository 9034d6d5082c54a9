from __future__ import annotations

import io
import logging
import threading

import orjson

from worker.telemetry import logs


def test_json_lines_carry_the_request_id_of_their_own_context() -> None:
    stream = io.StringIO()
    logs.configure("INFO", "JSON", stream)
    log = logging.getLogger("t")
    results: list[str] = []

    def work(rid: str) -> None:
        token = logs.request_id.set(rid)
        log.info("from %s", rid)
        logs.request_id.reset(token)
        results.append(rid)

    threads = [threading.Thread(target=work, args=(f"r{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = [orjson.loads(x) for x in stream.getvalue().splitlines()]
    assert len(lines) == 8
    for line in lines:
        assert line["message"] == f"from {line['requestId']}"
        assert line["level"] == "INFO" and line["logger"] == "t"
        assert line["timestamp"].endswith("Z")


def test_exceptions_are_logged_in_lambda_shape() -> None:
    stream = io.StringIO()
    logs.configure("INFO", "JSON", stream)
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("t").exception("failed")
    line = orjson.loads(stream.getvalue())
    assert line["errorType"] == "ValueError" and line["errorMessage"] == "bad"
    assert isinstance(line["stackTrace"], list)


def test_text_format() -> None:
    stream = io.StringIO()
    logs.configure("INFO", "Text", stream)
    token = logs.request_id.set("abc")
    logging.getLogger("t").warning("hello")
    logs.request_id.reset(token)
    assert stream.getvalue().startswith("[WARNING]\t") and "\tabc\thello" in stream.getvalue()
