"""Capacity from a forecast: scheduled scaling actions, as CloudFormation and as JSON, and
what they cost.

The forecast's upper bound is cut into windows (an hour by default); each window gets the
capacity its highest upper-bound rate needs. On Lambda that is provisioned concurrency
sized by Little's law: requests in flight = rate x duration, plus `sigmas` standard
deviations of that number (in flight is Poisson-distributed around its mean when arrivals
are random), divided by what one environment serves at once. With `--per-env-rps` (a
measured throughput of one environment, as `worker serve` reports it) the capacity is the
rate over that throughput instead. On ECS the same units are the service's desired count.

An action takes effect `lead_s` before its window, since provisioned concurrency and new
tasks take minutes to be ready; consecutive windows of equal capacity share one action,
and Application Auto Scaling allows at most 200 scheduled actions per scalable target.
Costs come from `worker.cost.model`, billed window by window.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from functools import cache
from typing import Any, Literal

import numpy as np

from worker.cost import model as cost
from worker.forecast.model import Forecast

Kind = Literal["lambda", "ecs"]
#: Application Auto Scaling's quota of scheduled actions per scalable target.
MAX_SCHEDULED_ACTIONS = 200


class ScheduleError(ValueError):
    """A schedule that cannot be made; the command prints it and exits 2."""


@dataclasses.dataclass(frozen=True)
class Sizing:
    """How a rate becomes capacity units (provisioned concurrency or tasks)."""

    duration_ms: float = 100.0  # mean duration of an invocation
    concurrency: int = 1  # requests one environment serves at once (1 on Lambda)
    per_env_rps: float | None = None  # measured throughput of one environment, if known
    sigmas: float = 2.0  # headroom for the jitter of requests in flight, in std devs
    utilisation: float = 1.0  # the share of each unit's capacity the schedule plans to use
    min_capacity: int = 1
    max_capacity: int | None = None  # None: whatever the forecast's peak needs

    def check(self) -> None:
        if self.duration_ms <= 0 or self.concurrency < 1:
            raise ScheduleError("--duration-ms must be > 0 and --concurrency ≥ 1")
        if self.per_env_rps is not None and self.per_env_rps <= 0:
            raise ScheduleError("--per-env-rps must be > 0")
        if self.sigmas < 0 or not 0 < self.utilisation <= 1:
            raise ScheduleError("--sigmas must be ≥ 0 and --utilisation in (0, 1]")
        if self.min_capacity < 0:
            raise ScheduleError("--min-capacity must be ≥ 0")
        if self.max_capacity is not None and self.max_capacity < max(1, self.min_capacity):
            raise ScheduleError("--max-capacity must be ≥ --min-capacity and ≥ 1")

    def in_flight(self, rps: float) -> float:
        """Requests in flight to plan for at `rps`: Little's law plus the jitter."""
        mean = rps * self.duration_ms / 1000
        return mean + self.sigmas * math.sqrt(mean)

    def units(self, rps: float) -> int:
        """Capacity units for `rps`, within the bounds."""
        if self.per_env_rps is not None:
            need = rps / self.per_env_rps
        else:
            need = self.in_flight(rps) / self.concurrency
        units = max(self.min_capacity, math.ceil(need / self.utilisation - 1e-9))
        return units if self.max_capacity is None else min(units, self.max_capacity)


@dataclasses.dataclass(frozen=True)
class Target:
    """What is scaled: a Lambda alias's provisioned concurrency or an ECS service."""

    kind: Kind = "lambda"
    function: str = "my-function"
    alias: str = "live"
    cluster: str = "default"
    service: str = "my-service"

    @property
    def namespace(self) -> str:
        return "lambda" if self.kind == "lambda" else "ecs"

    @property
    def dimension(self) -> str:
        if self.kind == "lambda":
            return "lambda:function:ProvisionedConcurrency"
        return "ecs:service:DesiredCount"

    @property
    def resource_id(self) -> str:
        if self.kind == "lambda":
            return f"function:{self.function}:{self.alias}"
        return f"service/{self.cluster}/{self.service}"


@dataclasses.dataclass(frozen=True)
class Window:
    start: float
    seconds: int
    expected_rps: float  # mean of the expected rate over the window
    upper_rps: float  # highest upper-bound rate in the window
    units: int


@dataclasses.dataclass(frozen=True)
class Action:
    at: float  # when it takes effect (its window's start less the lead)
    units: int

    @property
    def name(self) -> str:
        return "forecast-" + stamp(self.at).replace(":", "").replace("-", "")

    @property
    def schedule(self) -> str:
        return f"at({stamp(self.at)})"


def stamp(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def plan(forecast: Forecast, sizing: Sizing, window_s: int = 3600) -> list[Window]:
    """The forecast cut into windows, each sized for its highest upper-bound rate."""
    sizing.check()
    if window_s < forecast.step or window_s % forecast.step:
        raise ScheduleError(
            f"--window must be a multiple of the forecast's step ({forecast.step} s)"
        )
    per = window_s // forecast.step
    windows = []
    for first in range(0, len(forecast.mean), per):
        upper = float(np.max(forecast.upper[first : first + per]))
        expected = float(np.mean(forecast.mean[first : first + per]))
        seconds = min(per, len(forecast.mean) - first) * forecast.step
        start = forecast.start + first * forecast.step
        windows.append(Window(start, seconds, expected, upper, sizing.units(upper)))
    return windows


def actions(
    windows: list[Window], lead_s: int = 300, limit: int = MAX_SCHEDULED_ACTIONS
) -> list[Action]:
    """One action per change of capacity, `lead_s` ahead of its window."""
    found: list[Action] = []
    for w in windows:
        if not found or found[-1].units != w.units:
            found.append(Action(w.start - lead_s, w.units))
    if len(found) > limit:
        raise ScheduleError(
            f"the schedule needs {len(found)} actions; a scalable target takes {limit}: "
            "use a longer --window or a shorter --horizon"
        )
    return found


def bounds(windows: list[Window], sizing: Sizing) -> tuple[int, int]:
    """The scalable target's (min, max) capacity."""
    low = min(w.units for w in windows)
    high = max(w.units for w in windows)
    return low, max(high, sizing.max_capacity or 0)


def scheduled_action_json(target: Target, action: Action, high: int) -> dict[str, Any]:
    return {
        "ScheduledActionName": action.name,
        "Schedule": action.schedule,
        "Timezone": "UTC",
        # The schedule is a floor: a target-tracking policy may still scale above it.
        "ScalableTargetAction": {
            "MinCapacity": action.units,
            "MaxCapacity": max(high, action.units),
        },
    }


def to_json(
    target: Target, windows: list[Window], sizing: Sizing, lead_s: int = 300
) -> dict[str, Any]:
    """Requests for `aws application-autoscaling register-scalable-target` and
    `put-scheduled-action --cli-input-json`, one per action."""
    low, high = bounds(windows, sizing)
    ident = {
        "ServiceNamespace": target.namespace,
        "ResourceId": target.resource_id,
        "ScalableDimension": target.dimension,
    }
    return {
        "RegisterScalableTarget": {**ident, "MinCapacity": low, "MaxCapacity": high},
        "PutScheduledAction": [
            {**ident, **scheduled_action_json(target, a, high)} for a in actions(windows, lead_s)
        ],
    }


def to_cloudformation(
    target: Target, windows: list[Window], sizing: Sizing, lead_s: int = 300
) -> dict[str, Any]:
    """A template with one AWS::ApplicationAutoScaling::ScalableTarget holding the actions."""
    low, high = bounds(windows, sizing)
    if target.kind == "lambda":
        parameters = {
            "FunctionName": {"Type": "String", "Default": target.function},
            "AliasName": {"Type": "String", "Default": target.alias},
        }
        resource = {"Fn::Sub": "function:${FunctionName}:${AliasName}"}
    else:
        parameters = {
            "ClusterName": {"Type": "String", "Default": target.cluster},
            "ServiceName": {"Type": "String", "Default": target.service},
        }
        resource = {"Fn::Sub": "service/${ClusterName}/${ServiceName}"}
    first, last = windows[0].start, windows[-1].start + windows[-1].seconds
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"Capacity scheduled by `worker forecast` for {stamp(first)} to "
        f"{stamp(last)} UTC",
        "Parameters": parameters,
        "Resources": {
            "ForecastScalableTarget": {
                "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
                "Properties": {
                    "ServiceNamespace": target.namespace,
                    "ScalableDimension": target.dimension,
                    "ResourceId": resource,
                    "MinCapacity": low,
                    "MaxCapacity": high,
                    "ScheduledActions": [
                        scheduled_action_json(target, a, high) for a in actions(windows, lead_s)
                    ],
                },
            }
        },
    }


@dataclasses.dataclass(frozen=True)
class Billing:
    """What `worker.cost.model` needs beyond the rate: the function's size and prices."""

    duration_ms: float = 100.0
    memory_mb: float = 1024.0
    arch: str = "x86_64"
    task_vcpu: float = 1.0
    task_memory_gb: float = 2.0
    prices: dict[str, Any] | None = None  # a price file's contents; None: the bundled one

    def price_file(self) -> dict[str, Any]:
        return self.prices if self.prices is not None else _bundled()

    def profile(self, rps: float, peak_rps: float) -> cost.Profile:
        # The model derives the peak from the mean: a vanishing mean keeps the peak given.
        base = max(rps, 1e-9)
        return cost.Profile(
            rps=base,
            duration_ms=self.duration_ms,
            memory_mb=self.memory_mb,
            arch=self.arch,
            task_vcpu=self.task_vcpu,
            task_memory_gb=self.task_memory_gb,
            peak_to_mean=peak_rps / base,
        )


@cache
def _bundled() -> dict[str, Any]:
    return cost.load_prices()


def units_cost(kind: Kind, units: int, rps: float, seconds: float, billing: Billing) -> float:
    """What `units` of capacity held for `seconds` at a mean `rps` cost, by the cost model.

    The model sizes provisioned concurrency as ceil(peak rate x duration) and Fargate tasks
    as ceil(peak rate / one task's rate); a peak of `units - 1/2` units' worth makes each
    bill exactly `units`."""
    prices = billing.price_file()
    share = seconds / cost.SECONDS_PER_MONTH
    if units <= 0:  # nothing held: Lambda serves on demand, an ECS service is stopped
        return on_demand_cost(rps, seconds, billing) if kind == "lambda" else 0.0
    if kind == "lambda":
        peak = (units - 0.5) * 1000 / billing.duration_ms
        return cost.lambda_provisioned(billing.profile(rps, peak), prices).monthly * share
    probe = billing.profile(1.0, 1.0)
    per_task = probe.task_vcpu / probe.cpu_s * probe.utilisation
    peak = (units - 0.5) * per_task
    return cost.fargate(billing.profile(rps, peak), prices).monthly * share


def on_demand_cost(rps: float, seconds: float, billing: Billing) -> float:
    """Lambda on demand for `seconds` at a mean `rps` (what no provisioning costs)."""
    p = billing.profile(rps, rps)
    return cost.lambda_on_demand(p, billing.price_file()).monthly * seconds / cost.SECONDS_PER_MONTH


def schedule_cost(kind: Kind, windows: list[Window], billing: Billing) -> dict[str, float]:
    """The schedule's cost over its windows, the same capacity held at its peak throughout,
    and (for Lambda) the same traffic on demand."""
    peak = max(w.units for w in windows)
    scheduled = sum(units_cost(kind, w.units, w.expected_rps, w.seconds, billing) for w in windows)
    held = sum(units_cost(kind, peak, w.expected_rps, w.seconds, billing) for w in windows)
    out = {"schedule": scheduled, "held at the peak": held}
    if kind == "lambda":
        out["on demand"] = sum(on_demand_cost(w.expected_rps, w.seconds, billing) for w in windows)
    return out
