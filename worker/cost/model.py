"""The cost model: a function's profile and a price file in, a monthly cost per platform out.

Every platform is sized for the peak rate (the mean times `peak_to_mean`) and billed for a
30-day month at the mean rate where it bills per use:

- Lambda on demand: requests, and GB-seconds of the mean rate's invocations.
- Lambda with provisioned concurrency: enough provisioned environments for the peak
  (peak rate x duration), billed all month, plus the lower duration rate and requests.
- Lambda Managed Instances: instances for the vCPUs the peak needs (peak rate x CPU per
  invocation / target utilisation; at least the platform's minimum of 3), each at the EC2
  price plus the management fee, and requests.
- Fargate: tasks of `task_vcpu`/`task_memory_gb`, each serving `task_vcpu / CPU per
  invocation x utilisation` invocations a second, enough for the peak, all month.
- EC2 on demand: instances for the same vCPUs, all month (at least one).

Assumptions worth saying out loud (`assumptions()` prints them): no free tier unless asked,
no Savings Plans or Spot, no data transfer, load balancer or NAT, CPU per invocation is the
duration unless measured, and a serve-style runtime that keeps a core busy per vCPU.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from importlib import resources
from typing import Any

SECONDS_PER_MONTH = 30 * 24 * 3600
HOURS_PER_MONTH = 30 * 24


@dataclasses.dataclass(frozen=True)
class Profile:
    """What one function does: its mean rate, time and memory per invocation."""

    rps: float
    duration_ms: float
    memory_mb: float
    cpu_ms: float | None = None  # CPU per invocation; the duration when not measured
    peak_to_mean: float = 1.0
    arch: str = "x86_64"
    utilisation: float = 0.7  # the target share of a vCPU kept busy on LMI, Fargate, EC2
    task_vcpu: float = 1.0
    task_memory_gb: float = 2.0
    free_tier: bool = False

    @property
    def cpu_s(self) -> float:
        return (self.duration_ms if self.cpu_ms is None else self.cpu_ms) / 1000

    @property
    def peak_rps(self) -> float:
        return self.rps * self.peak_to_mean

    def at(self, rps: float) -> Profile:
        return dataclasses.replace(self, rps=rps)


@dataclasses.dataclass(frozen=True)
class Estimate:
    platform: str
    monthly: float
    units: int  # environments, instances or tasks it takes
    unit: str
    utilisation: float  # of what is paid for, at the mean rate


def load_prices(path: str | None = None) -> dict[str, Any]:
    """The bundled price file, or `path` (the same shape)."""
    if path:
        with open(path, encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
            return data
    text = resources.files("worker.cost").joinpath("prices.json").read_text("utf-8")
    bundled: dict[str, Any] = json.loads(text)
    return bundled


def lambda_on_demand(p: Profile, prices: dict[str, Any]) -> Estimate:
    lam = prices["lambda"]
    requests = p.rps * SECONDS_PER_MONTH
    gb_seconds = requests * p.duration_ms / 1000 * p.memory_mb / 1024
    if p.free_tier:
        requests = max(0.0, requests - lam["free_tier"]["requests"])
        gb_seconds = max(0.0, gb_seconds - lam["free_tier"]["gb_seconds"])
    cost = requests / 1e6 * lam["request_per_million"] + gb_seconds * lam["gb_second"][p.arch]
    concurrency = p.peak_rps * p.duration_ms / 1000
    return Estimate("Lambda on demand", cost, math.ceil(concurrency), "environments at peak", 1.0)


def lambda_provisioned(p: Profile, prices: dict[str, Any]) -> Estimate:
    lam = prices["lambda"]
    provisioned = max(1, math.ceil(p.peak_rps * p.duration_ms / 1000))
    gb = p.memory_mb / 1024
    requests = p.rps * SECONDS_PER_MONTH
    cost = (
        provisioned * gb * SECONDS_PER_MONTH * lam["provisioned_gb_second"][p.arch]
        + requests * p.duration_ms / 1000 * gb * lam["provisioned_duration_gb_second"][p.arch]
        + requests / 1e6 * lam["request_per_million"]
    )
    busy = p.rps * p.duration_ms / 1000 / provisioned
    return Estimate("Lambda provisioned", cost, provisioned, "provisioned environments", busy)


def vcpus_needed(p: Profile) -> float:
    return p.peak_rps * p.cpu_s / p.utilisation


def lambda_managed_instances(p: Profile, prices: dict[str, Any]) -> Estimate:
    lmi, ec2 = prices["lambda_managed_instances"], prices["ec2"][p.arch]
    instances = max(lmi["minimum_instances"], math.ceil(vcpus_needed(p) / ec2["vcpus"]))
    cost = (
        instances * HOURS_PER_MONTH * ec2["hour"] * (1 + lmi["management_fee"])
        + p.rps * SECONDS_PER_MONTH / 1e6 * lmi["request_per_million"]
    )
    busy = p.rps * p.cpu_s / (instances * ec2["vcpus"])
    return Estimate("Lambda Managed Instances", cost, instances, ec2["type"], busy)


def fargate(p: Profile, prices: dict[str, Any]) -> Estimate:
    far = prices["fargate"]
    per_task = p.task_vcpu / p.cpu_s * p.utilisation  # invocations a second one task serves
    tasks = max(1, math.ceil(p.peak_rps / per_task))
    hourly = p.task_vcpu * far["vcpu_hour"][p.arch] + p.task_memory_gb * far["gb_hour"][p.arch]
    busy = p.rps * p.cpu_s / (tasks * p.task_vcpu)
    unit = f"tasks of {p.task_vcpu:g} vCPU / {p.task_memory_gb:g} GB"
    return Estimate("Fargate", tasks * hourly * HOURS_PER_MONTH, tasks, unit, busy)


def ec2_on_demand(p: Profile, prices: dict[str, Any]) -> Estimate:
    ec2 = prices["ec2"][p.arch]
    instances = max(1, math.ceil(vcpus_needed(p) / ec2["vcpus"]))
    busy = p.rps * p.cpu_s / (instances * ec2["vcpus"])
    return Estimate("EC2 on demand", instances * ec2["hour"] * HOURS_PER_MONTH, instances,
                    ec2["type"], busy)  # fmt: skip


PLATFORMS = (lambda_on_demand, lambda_provisioned, lambda_managed_instances, fargate, ec2_on_demand)


def estimate(p: Profile, prices: dict[str, Any]) -> list[Estimate]:
    return [platform(p, prices) for platform in PLATFORMS]


def cheapest(p: Profile, prices: dict[str, Any]) -> Estimate:
    return min(estimate(p, prices), key=lambda e: e.monthly)


def crossovers(
    p: Profile, prices: dict[str, Any], low: float = 0.01, high: float = 100_000.0
) -> list[tuple[float, str, str]]:
    """The request rates at which the cheapest platform changes: (rate, from, to), found on
    a logarithmic grid and refined by bisection to 1 %."""
    steps = 400
    grid = [low * (high / low) ** (i / steps) for i in range(steps + 1)]
    found = []
    previous = cheapest(p.at(grid[0]), prices).platform
    for a, b in itertools.pairwise(grid):
        now = cheapest(p.at(b), prices).platform
        if now != previous:
            lo, hi = a, b
            while hi / lo > 1.01:
                mid = math.sqrt(lo * hi)
                if cheapest(p.at(mid), prices).platform == previous:
                    lo = mid
                else:
                    hi = mid
            found.append((hi, previous, now))
            previous = now
    return found


def assumptions(p: Profile, prices: dict[str, Any]) -> list[str]:
    ec2 = prices["ec2"][p.arch]
    return [
        f"prices: {prices['region']}, {prices['currency']}, as of {prices['as_of']} "
        "(--prices FILE overrides)",
        "a month is 30 days; every platform is sized for the peak "
        f"({p.peak_rps:,.2f} req/s = mean x {p.peak_to_mean:g}) and bills per use at the mean",
        f"CPU per invocation {p.cpu_s * 1000:g} ms"
        + (" (the duration: none measured)" if p.cpu_ms is None else " (measured)"),
        f"LMI, Fargate and EC2 keep vCPUs {p.utilisation:.0%} busy at the peak; LMI and EC2 "
        f"on {ec2['type']} ({ec2['vcpus']} vCPU, ${ec2['hour']}/h), LMI at least "
        f"{prices['lambda_managed_instances']['minimum_instances']} instances plus a "
        f"{prices['lambda_managed_instances']['management_fee']:.0%} management fee",
        "Lambda free tier "
        + ("subtracted" if p.free_tier else "not subtracted")
        + "; no Savings Plans, Spot, data transfer, load balancer or NAT",
    ]
