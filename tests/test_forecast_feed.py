"""Mission Control's forecast file: parsing, the steps around now, the live rate's place
against the band, and a file that changes, breaks or goes while the service runs."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from worker.telemetry import forecast_feed
from worker.telemetry.forecast_feed import FORMAT, Feed, ForecastError, around, parse, view

START = 1_767_571_200.0  # 2026-01-05 00:00 UTC


def body(steps: int = 10, level: float = 10.0, **over: Any) -> dict[str, Any]:
    """A forecast file's object from START: `steps` minutes at `level` req/s, the band ±
    half of it; `over` replaces fields."""
    doc = forecast_feed.document(
        START, 60, 0.95, [level] * steps, [level / 2] * steps, [level * 1.5] * steps
    )
    doc.update(over)
    return doc


def write(path: Path, doc: dict[str, Any] | str) -> None:
    """Replace the file whole, as `worker forecast --out` does (a new inode)."""
    partial = path.with_suffix(".partial")
    partial.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    os.replace(partial, path)


def outlook(requests: float, span_s: float = 100.0) -> dict[str, Any]:
    """The rest of the outlook as `outlook.combine` gives it: arrivals over the window."""
    return {"span_s": span_s, "throttle": {"requests": requests}}


def test_the_document_round_trips() -> None:
    series = parse(json.dumps(body(steps=3)))
    assert series.start == START and series.step == 60 and series.interval == 0.95
    assert series.mean == (10.0,) * 3 and series.lower == (5.0,) * 3
    assert series.end == START + 180
    assert series.index(START) == 0 and series.index(START + 179.9) == 2
    assert series.index(START - 1) is None and series.index(START + 180) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "no JSON object"),
        (json.dumps(body(format="worker-forecast/0")), "--emit forecast"),
        (json.dumps({"RegisterScalableTarget": {}}), "--emit json holds scaling actions"),
        (json.dumps(body(step=0)), "'step' must be > 0"),
        (json.dumps(body(start="today")), "'start' must be a number"),
        (json.dumps(body(interval=95)), "'interval' must be a share"),
        (json.dumps(body(mean=[])), "'mean' must be a non-empty list"),
        (json.dumps(body(upper=[1.0, -2.0])), "upper[1] is -2.0"),
        (json.dumps(body(lower=[1.0, None])), "lower[1] is None"),
        (json.dumps(body(steps=2, mean=[1.0])), "differ in length (1, 2, 2)"),
        (json.dumps(body(steps=2, lower=[1.0, 20.0])), "step 1: lower 20 is above upper 15"),
    ],
)
def test_a_bad_file_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ForecastError) as err:
        parse(text)
    assert message in str(err.value)


def test_the_steps_around_now() -> None:
    series = parse(json.dumps(body(steps=100)))
    now = START + 50 * 60 + 30  # half-way into step 50
    points = around(series, now, before_s=120, after_s=600)
    # The steps overlapping [now - 2 min, now + 10 min]: 48 (its second half) to 60.
    assert [p[0] for p in points] == [START + i * 60 for i in range(48, 61)]
    assert points[0][1:] == [10.0, 5.0, 15.0]
    # At the file's edges: only what it holds.
    assert [p[0] for p in around(series, START + 30, 120, 60)] == [START, START + 60]
    assert around(series, START + 200 * 60, 120, 3600) == []
    assert len(around(series, START - 1800, 60, 3600)) == 30


@pytest.mark.parametrize(
    ("requests", "state"), [(2000.0, "above"), (1000.0, "within"), (100.0, "below")]
)
def test_the_live_rate_against_the_band(requests: float, state: str) -> None:
    series = parse(json.dumps(body()))
    rate = forecast_feed.live_rate(outlook(requests))  # over a 100 s window
    out = view(series, START + 90, before_s=120, rate=rate)
    assert out["expected"] == {"mean": 10.0, "lower": 5.0, "upper": 15.0}
    assert out["live_rps"] == requests / 100 and out["state"] == state
    assert out["after_s"] == forecast_feed.AHEAD_S and out["error"] is None


def test_no_live_rate_before_the_window_spans_any_time() -> None:
    assert forecast_feed.live_rate(outlook(5, span_s=0)) is None
    assert forecast_feed.live_rate({}) is None
    out = view(parse(json.dumps(body())), START + 90, 120, rate=None)
    assert out["expected"] is not None and out["state"] is None


def test_a_file_without_the_current_time() -> None:
    series = parse(json.dumps(body(steps=10)))
    later = view(series, START + 3 * 3600, before_s=120, rate=50.0)
    assert later["expected"] is None and later["state"] is None and later["points"] == []
    assert later["start"] == START and later["end"] == START + 600  # what the page names
    # Just before the file starts: the coming steps are drawn, but there is no band now.
    early = view(series, START - 300, before_s=120, rate=50.0)
    assert early["expected"] is None and early["state"] is None
    assert [p[0] for p in early["points"]] == [START + i * 60 for i in range(10)]


def test_the_feed_reads_the_file_again_when_it_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="worker.forecast")
    path = tmp_path / "forecast.json"
    write(path, body(level=10.0))
    feed = Feed(str(path))
    first = feed.outlook(START + 90, 120, outlook(2000))
    assert first["state"] == "above" and first["expected"]["mean"] == 10.0
    assert first["file"] == str(path)
    assert feed.current()[0] is feed.current()[0]  # unchanged: not parsed again

    write(path, body(level=100.0))  # a new forecast: the band is now above the rate
    second = feed.outlook(START + 90, 120, outlook(2000))
    assert second["expected"]["mean"] == 100.0 and second["state"] == "below"

    write(path, '{"format": "worker-forecast/1", "start": ')  # half a file: no forecast
    caplog.clear()
    broken = feed.outlook(START + 90, 120, outlook(2000))
    assert broken["error"].startswith("not JSON") and broken["points"] == []
    assert broken["state"] is None and broken["live_rps"] == 20.0
    assert broken["before_s"] == 120 and broken["after_s"] == forecast_feed.AHEAD_S
    feed.outlook(START + 91, 120, outlook(2000))  # the same bad file: logged once
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Mission Control shows no forecast" in warnings[0]
    assert str(path) in warnings[0] and "not JSON" in warnings[0]

    path.unlink()  # gone: no forecast, said once
    gone = feed.outlook(START + 90, 120, outlook(2000))
    assert "cannot read it" in gone["error"]
    write(path, body(level=10.0))  # back: read again
    assert feed.outlook(START + 90, 120, outlook(2000))["state"] == "above"


def test_a_missing_file_at_start(tmp_path: Path) -> None:
    feed = forecast_feed.feed(str(tmp_path / "none.json"))
    assert forecast_feed.feed(str(tmp_path / "none.json")) is feed  # one per process
    series, error = feed.current()
    assert series is None and error is not None and "No such file" in error


def test_the_format_is_stamped() -> None:
    assert body()["format"] == FORMAT
    assert forecast_feed.document(START, 60, 0.9, [1 / 3], [0.0], [1.0])["mean"] == [0.333333]
