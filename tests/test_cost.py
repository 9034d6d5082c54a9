"""The cost model's arithmetic against hand-computed cases, and `worker cost` itself."""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client import invoke
from tests.conftest import ROOT
from worker.cost import command
from worker.cost.model import (
    HOURS_PER_MONTH,
    SECONDS_PER_MONTH,
    Profile,
    cheapest,
    crossovers,
    ec2_on_demand,
    fargate,
    lambda_managed_instances,
    lambda_on_demand,
    lambda_provisioned,
    load_prices,
)

PRICES = load_prices()


def per_month(requests: float) -> float:
    """The mean rate that makes `requests` in a 30-day month."""
    return requests / SECONDS_PER_MONTH


def test_lambdas_published_example_with_the_free_tier() -> None:
    # AWS's example: 3 million requests a month, 120 ms each, 1,536 MB, x86. Compute:
    # 3M x 0.12 s x 1.5 GB = 540,000 GB-s, less the free 400,000 = 140,000 x $0.0000166667
    # = $2.33; requests: (3M - 1M) x $0.20 per million = $0.40; total $2.73.
    p = Profile(rps=per_month(3e6), duration_ms=120, memory_mb=1536, free_tier=True)
    assert lambda_on_demand(p, PRICES).monthly == pytest.approx(2.73, abs=0.005)


def test_lambda_on_demand_without_the_free_tier() -> None:
    p = Profile(rps=per_month(3e6), duration_ms=120, memory_mb=1536)
    # 540,000 GB-s x $0.0000166667 = $9.00, and 3M requests = $0.60.
    assert lambda_on_demand(p, PRICES).monthly == pytest.approx(9.60, abs=0.005)
    arm = Profile(rps=per_month(3e6), duration_ms=120, memory_mb=1536, arch="arm64")
    # 540,000 x $0.0000133334 = $7.20, and $0.60.
    assert lambda_on_demand(arm, PRICES).monthly == pytest.approx(7.80, abs=0.005)


def test_provisioned_concurrency_is_sized_for_the_peak() -> None:
    # 10 req/s at the mean, 30 at the peak, 200 ms, 1 GB: 6 environments provisioned.
    p = Profile(rps=10, duration_ms=200, memory_mb=1024, peak_to_mean=3)
    e = lambda_provisioned(p, PRICES)
    assert e.units == 6
    requests = 10 * SECONDS_PER_MONTH
    expected = (
        6 * 1 * SECONDS_PER_MONTH * 0.0000041667
        + requests * 0.2 * 1 * 0.0000097222
        + requests / 1e6 * 0.20
    )
    assert e.monthly == pytest.approx(expected)
    assert e.utilisation == pytest.approx(2 / 6)  # 2 busy at the mean, of 6


def test_lmi_never_runs_fewer_than_three_instances_and_adds_its_fee() -> None:
    small = Profile(rps=1, duration_ms=10, memory_mb=512)
    e = lambda_managed_instances(small, PRICES)
    requests = SECONDS_PER_MONTH / 1e6 * 0.20
    assert e.units == 3
    assert e.monthly == pytest.approx(3 * HOURS_PER_MONTH * 0.1008 * 1.15 + requests)
    # 100 req/s x 50 ms of CPU at 70 % busy: 7.14 vCPUs, 4 instances of 2.
    big = Profile(rps=100, duration_ms=50, memory_mb=512)
    assert lambda_managed_instances(big, PRICES).units == 4


def test_fargate_and_ec2_by_hand() -> None:
    # One task of 1 vCPU and 2 GB all month: (0.04048 + 2 x 0.004445) $/h x 720 h.
    quiet = Profile(rps=1, duration_ms=10, memory_mb=512)
    assert fargate(quiet, PRICES).units == 1
    assert fargate(quiet, PRICES).monthly == pytest.approx(35.5464)
    # 140 req/s of 10 ms CPU: a task serves 1 / 0.01 x 0.7 = 70 req/s: 2 tasks.
    assert fargate(quiet.at(140), PRICES).units == 2
    assert fargate(quiet.at(141), PRICES).units == 3
    assert ec2_on_demand(quiet, PRICES).monthly == pytest.approx(0.1008 * 720)


def test_crossovers_are_where_the_cheapest_changes() -> None:
    p = Profile(rps=1, duration_ms=45, memory_mb=1024, cpu_ms=5, peak_to_mean=1.5)
    found = crossovers(p, PRICES)
    assert found, "an I/O-bound function leaves Lambda on demand somewhere"
    for rate, before, after in found:
        assert cheapest(p.at(rate * 0.98), PRICES).platform == before
        assert cheapest(p.at(rate * 1.02), PRICES).platform == after


def test_worker_cost_prints_the_table_the_cheapest_and_its_assumptions() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "worker",
            "cost",
            "--rps",
            "200",
            "--duration-ms",
            "45",
            "--memory-mb",
            "1024",
            "--cpu-ms",
            "5",
            "--peak-to-mean",
            "1.5",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    out = run.stdout
    for platform in ("Lambda on demand", "Lambda provisioned", "Lambda Managed Instances",
                     "Fargate", "EC2 on demand"):  # fmt: skip
        assert f"| {platform}" in out
    assert out.count("(cheapest)") == 1
    assert "from " in out and "req/s:" in out  # the crossovers
    assert "assumptions:" in out and "as of" in out


def test_worker_cost_without_a_profile_says_what_it_needs() -> None:
    with pytest.raises(SystemExit) as info:
        command.main(["--memory-mb", "512"])
    assert info.value.code == 2


def test_the_plot_is_written(tmp_path: Path) -> None:
    out = tmp_path / "cost.png"
    assert command.main(["--rps", "5", "--duration-ms", "30", "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_a_live_profile_is_read_from_the_admin_listener(serve) -> None:
    srv = serve("handlers.echo.handler", "--workers", "1")
    stop = asyncio.Event()

    async def load() -> None:
        while not stop.is_set():
            await invoke(srv.port, {"n": 1})

    driver = asyncio.ensure_future(load())
    try:
        rps, duration = await asyncio.to_thread(
            command.live_profile, f"http://127.0.0.1:{srv.admin_port}", 1.0
        )
    finally:
        stop.set()
        await driver
    assert rps > 0 and duration >= 0


#: A measured profile as bench/cost.py measures it (the no-op's figures on 2 cores).
MEASURED = {
    "handler": "handlers.echo.handler",
    "rps": 6030.0,
    "duration_ms": 0.03034,
    "cpu_ms": 0.044,
    "pss_mb": 33.0,
    "memory_mb": 512.0,
    "errors": 0.0,
}


def printed(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert command.main(argv) == 0
    return capsys.readouterr().out


def test_from_a_results_folder_prints_the_table_given_by_hand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.cost import write

    summary = write(tmp_path, {"no-op": MEASURED, "io-50ms": {**MEASURED, "duration_ms": 50.2}})
    capsys.readouterr()
    measured = printed(capsys, ["--from", str(tmp_path), "--profile", "no-op"])
    by_hand = printed(capsys, ["--rps", "6030", "--duration-ms", "0.03034", "--memory-mb",
                               "512", "--cpu-ms", "0.044", "--peak-to-mean", "3"])  # fmt: skip
    assert measured == by_hand
    assert "6,030.00 req/s, 0.03034 ms, 512 MB" in measured
    # The file itself, a unique prefix of the name, and a flag over the measured value.
    assert printed(capsys, ["--from", str(tmp_path / "cost.json"), "--profile", "no"]) == by_hand
    at_ten = printed(capsys, ["--from", str(tmp_path), "--profile", "no-op", "--rps", "10"])
    ten = next(t for t in summary["tables"]["no-op"] if t["rps"] == 10)
    assert at_ten == ten["output"] + "\n"
    # The command cost.json records for the measured rate prints the same table.
    recorded = shlex.split(summary["profiles"]["no-op"]["command"])
    assert recorded[:2] == ["worker", "cost"]
    assert printed(capsys, recorded[2:]) == by_hand


def test_from_results_names_the_profiles_when_it_cannot_pick_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.cost import write

    write(tmp_path, {"no-op": MEASURED, "io-50ms": MEASURED, "io-1s": MEASURED})
    capsys.readouterr()
    for argv in (["--profile", "minilm"], ["--profile", "io"], []):
        with pytest.raises(SystemExit) as info:
            command.main(["--from", str(tmp_path), *argv])
        assert info.value.code == 2
        assert "no-op, io-50ms, io-1s" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        command.main(["--from", str(tmp_path / "missing")])
    assert info.value.code == 2
