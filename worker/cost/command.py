"""`worker cost`: the monthly cost of this function on each platform, and where each wins.

    worker cost --rps 200 --duration-ms 45 --memory-mb 1024 [--cpu-ms 30]
                [--peak-to-mean 3] [--arch x86_64|arm64] [--prices FILE] [--plot FILE.png]
    worker cost --from http://127.0.0.1:8081 [--window 10] --memory-mb 1024 …

`--from` reads a running service's admin listener twice, `--window` seconds apart: the
request rate and mean duration between the two readings are the profile's.
"""

from __future__ import annotations

import argparse
import time
import urllib.request
from collections.abc import Sequence

from worker.cost.model import Profile, assumptions, crossovers, estimate, load_prices
from worker.telemetry.metrics import total


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="worker cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="source", help="a running service's admin URL (live profile)")
    p.add_argument("--window", type=float, default=10.0, help="seconds between the readings")
    p.add_argument("--rps", type=float, help="mean requests per second")
    p.add_argument("--duration-ms", type=float, help="mean duration of an invocation")
    p.add_argument("--memory-mb", type=float, default=1024.0, help="memory of an environment")
    p.add_argument("--cpu-ms", type=float, help="CPU per invocation (default: the duration)")
    p.add_argument("--peak-to-mean", type=float, default=1.0, help="peak rate ÷ mean rate")
    p.add_argument("--arch", choices=("x86_64", "arm64"), default="x86_64")
    p.add_argument("--utilisation", type=float, default=0.7, help="target vCPU busy share")
    p.add_argument("--free-tier", action="store_true", help="subtract Lambda's free tier")
    p.add_argument("--prices", help="a price file in the bundled one's shape")
    p.add_argument("--plot", help="write cost vs request rate, crossovers marked, to this PNG")
    return p


def live_profile(url: str, window: float) -> tuple[float, float]:
    """(requests per second, mean duration in ms) from two readings of /_worker/metrics."""

    def read() -> tuple[float, float, float]:
        with urllib.request.urlopen(url.rstrip("/") + "/_worker/metrics", timeout=10) as r:
            text = r.read().decode()
        count = total(text, "worker_invocation_duration_seconds_count")
        seconds = total(text, "worker_invocation_duration_seconds_sum")
        return time.monotonic(), count, seconds

    t0, n0, s0 = read()
    time.sleep(window)
    t1, n1, s1 = read()
    calls = n1 - n0
    if calls <= 0:
        raise SystemExit("worker cost: no invocation between the two readings")
    return calls / (t1 - t0), (s1 - s0) / calls * 1000


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.source:
        rps, duration = live_profile(args.source, args.window)
    elif args.rps is None or args.duration_ms is None:
        parser().error("give --rps and --duration-ms, or --from a running service")
    else:
        rps, duration = args.rps, args.duration_ms
    prices = load_prices(args.prices)
    profile = Profile(
        rps=rps,
        duration_ms=duration,
        memory_mb=args.memory_mb,
        cpu_ms=args.cpu_ms,
        peak_to_mean=args.peak_to_mean,
        arch=args.arch,
        utilisation=args.utilisation,
        free_tier=args.free_tier,
    )
    print(report(profile, prices))
    if args.plot:
        plot(profile, prices, args.plot)
        print(f"plot: {args.plot}")
    return 0


def report(profile: Profile, prices: dict[str, object]) -> str:
    rows = estimate(profile, prices)
    best = min(rows, key=lambda e: e.monthly)
    lines = [
        f"profile: {profile.rps:,.2f} req/s, {profile.duration_ms:g} ms, "
        f"{profile.memory_mb:g} MB, {profile.arch}",
        "",
        "| platform | $/month | needs | busy at the mean |",
        "|---|---:|---|---:|",
    ]
    for e in rows:
        mark = " (cheapest)" if e is best else ""
        lines.append(
            f"| {e.platform}{mark} | {e.monthly:,.2f} | {e.units:,} {e.unit} | "
            f"{e.utilisation:.0%} |"
        )
    lines += ["", "cheapest by request rate (the rest of the profile as given):"]
    crossing = crossovers(profile, prices)
    if not crossing:
        lines.append(f"  {best.platform} at every rate from 0.01 to 100,000 req/s")
    for rate, before, after in crossing:
        lines.append(f"  from {rate:,.2f} req/s: {after} (before: {before})")
    lines += ["", "assumptions:", *(f"  - {a}" for a in assumptions(profile, prices))]
    return "\n".join(lines)


def plot(profile: Profile, prices: dict[str, object], path: str) -> None:
    """Cost vs request rate, each platform a line, crossovers marked (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [0.01 * 10 ** (i / 50) for i in range(351)]
    fig, ax = plt.subplots(figsize=(8, 5))
    for index, name in enumerate(e.platform for e in estimate(profile, prices)):
        costs = [estimate(profile.at(r), prices)[index].monthly for r in rates]
        ax.plot(rates, costs, label=name)
    for rate, _, after in crossovers(profile, prices):
        ax.axvline(rate, color="grey", linestyle=":", linewidth=1)
        ax.annotate(after, (rate, ax.get_ylim()[0]), rotation=90, fontsize=7, va="bottom")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("mean requests per second")
    ax.set_ylabel("USD per month")
    ax.set_title(
        f"{profile.duration_ms:g} ms, {profile.memory_mb:g} MB, peak x{profile.peak_to_mean:g}"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
