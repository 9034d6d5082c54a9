"""`worker cost`: the monthly cost of this function on each platform, and where each wins.

    worker cost --rps 200 --duration-ms 45 --memory-mb 1024 [--cpu-ms 30]
                [--peak-to-mean 3] [--arch x86_64|arm64] [--prices FILE] [--plot FILE.png]
    worker cost --from http://127.0.0.1:8081 [--window 10] --memory-mb 1024 …
    worker cost --from bench/results/latest --profile minilm [--rps 100] …

`--from URL` reads a running service's admin listener twice, `--window` seconds apart: the
request rate and mean duration between the two readings are the profile's. `--from PATH`
reads the profiles a benchmark run measured (`bench/cost.py`'s cost.json, or the results
folder holding it); `--profile` picks one, and any flag given overrides its value.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from worker.cost.model import Profile, assumptions, crossovers, estimate, load_prices
from worker.telemetry.metrics import total

#: The profile's settings when neither a flag nor a measured profile gives them.
DEFAULTS: dict[str, Any] = {
    "memory_mb": 1024.0,
    "peak_to_mean": 1.0,
    "arch": "x86_64",
    "utilisation": 0.7,
}
#: The profile's fields a flag or a measured profile may give.
FIELDS = ("rps", "duration_ms", "memory_mb", "cpu_ms", "peak_to_mean", "arch", "utilisation")
#: The file `bench/cost.py` writes in a results folder.
RESULTS_FILE = "cost.json"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="worker cost", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--from",
        dest="source",
        help="a running service's admin URL (live profile), or a bench results folder or "
        "its cost.json (measured profiles)",
    )
    p.add_argument("--profile", help="which measured profile of --from PATH")
    p.add_argument("--window", type=float, default=10.0, help="seconds between the readings")
    p.add_argument("--rps", type=float, help="mean requests per second")
    p.add_argument("--duration-ms", type=float, help="mean duration of an invocation")
    p.add_argument("--memory-mb", type=float, help="memory of an environment (default 1024)")
    p.add_argument("--cpu-ms", type=float, help="CPU per invocation (default: the duration)")
    p.add_argument("--peak-to-mean", type=float, help="peak rate ÷ mean rate (default 1)")
    p.add_argument("--arch", choices=("x86_64", "arm64"), help="default x86_64")
    p.add_argument("--utilisation", type=float, help="target vCPU busy share (default 0.7)")
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


def measured_profile(path: str, name: str | None) -> dict[str, Any]:
    """One profile of a benchmark run's cost.json (`path` is the file or its folder), with
    the run's model settings (peak-to-mean, arch, utilisation) under it. `name` may be a
    unique prefix; none is needed when the file holds one profile. LookupError, naming the
    profiles, when it picks none or several."""
    file = Path(path)
    if file.is_dir():
        file = file / RESULTS_FILE
    data = json.loads(file.read_text(encoding="utf-8"))
    profiles: dict[str, dict[str, Any]] = data["profiles"]
    names = ", ".join(profiles)
    if name is None:
        if len(profiles) != 1:
            raise LookupError(f"{file} holds several profiles: pick one with --profile ({names})")
        chosen = next(iter(profiles))
    else:
        exact = [n for n in profiles if n.lower() == name.lower()]
        found = exact or [n for n in profiles if n.lower().startswith(name.lower())]
        if len(found) != 1:
            what = "no" if not found else "more than one"
            raise LookupError(f"{what} profile {name!r} in {file}: its profiles are {names}")
        chosen = found[0]
    return {**data.get("model", {}), **profiles[chosen]}


def _exact(x: float) -> str:
    """`x` written short, and so that it reads back equal."""
    short = f"{x:g}"
    return short if float(short) == x else repr(x)


def argv_for(profile: Profile) -> list[str]:
    """The `worker cost` arguments that give this profile by hand."""
    argv = ["--rps", _exact(profile.rps), "--duration-ms", _exact(profile.duration_ms),
            "--memory-mb", _exact(profile.memory_mb)]  # fmt: skip
    if profile.cpu_ms is not None:
        argv += ["--cpu-ms", _exact(profile.cpu_ms)]
    argv += ["--peak-to-mean", _exact(profile.peak_to_mean), "--arch", profile.arch,
             "--utilisation", _exact(profile.utilisation)]  # fmt: skip
    return argv + (["--free-tier"] if profile.free_tier else [])


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    given = {key: getattr(args, key) for key in FIELDS if getattr(args, key) is not None}
    if args.source and args.source.startswith(("http://", "https://")):
        rps, duration = live_profile(args.source, args.window)
        values = {**DEFAULTS, **given, "rps": rps, "duration_ms": duration}
    elif args.source:
        try:
            measured = measured_profile(args.source, args.profile)
        except (OSError, ValueError, KeyError) as exc:
            parser().error(f"--from {args.source}: {exc}")
        except LookupError as exc:
            parser().error(str(exc))
        values = {**DEFAULTS, **measured, **given}
    elif args.rps is None or args.duration_ms is None:
        parser().error("give --rps and --duration-ms, or --from a running service or results")
    else:
        values = {**DEFAULTS, **given}
    prices = load_prices(args.prices)
    profile = Profile(
        rps=float(values["rps"]),
        duration_ms=float(values["duration_ms"]),
        memory_mb=float(values["memory_mb"]),
        cpu_ms=None if values.get("cpu_ms") is None else float(values["cpu_ms"]),
        peak_to_mean=float(values["peak_to_mean"]),
        arch=str(values["arch"]),
        utilisation=float(values["utilisation"]),
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


def plot(profile: Profile, prices: dict[str, object], path: str, title: str = "") -> None:
    """Cost vs request rate, each platform a line, crossovers marked (needs matplotlib);
    `title` goes before the profile's own description."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [0.01 * 10 ** (i / 50) for i in range(351)]
    fig, ax = plt.subplots(figsize=(8, 5))
    for index, name in enumerate(e.platform for e in estimate(profile, prices)):
        costs = [estimate(profile.at(r), prices)[index].monthly for r in rates]
        ax.plot(rates, costs, label=name)
    # Log scales first: the labels sit at the bottom of the axis as it will be drawn.
    ax.set_xscale("log")
    ax.set_yscale("log")
    for rate, _, after in crossovers(profile, prices):
        ax.axvline(rate, color="grey", linestyle=":", linewidth=1)
        ax.annotate(
            f"{after} from {rate:,.3g} req/s",
            (rate, ax.get_ylim()[0]),
            rotation=90,
            fontsize=7,
            va="bottom",
            ha="right",
        )
    ax.set_xlabel("mean requests per second")
    ax.set_ylabel("USD per month")
    ax.set_title(
        (f"{title}: " if title else "")
        + f"{profile.duration_ms:g} ms, {profile.memory_mb:g} MB, peak x{profile.peak_to_mean:g}"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
