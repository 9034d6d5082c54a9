"""Powertools' Metrics: EMF lines on stdout, the cold-start metric on the first call."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

metrics = Metrics(namespace="CompatApp", service="compat")


@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    metrics.add_dimension(name="channel", value=event.get("channel", "web"))
    metrics.add_metric(name="Orders", unit=MetricUnit.Count, value=event.get("orders", 1))
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=12.5)
    metrics.add_metadata(key="order_id", value=event.get("order_id"))
    return {"recorded": 2}
