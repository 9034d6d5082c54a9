"""The container image, proven without a Docker engine: the wheel built as the builder stage
builds it, installed into a fresh venv away from the source tree, and the image's
ENTRYPOINT + CMD run from there in both modes on a read-only root filesystem with only
/tmp writable (Lambda's layout; a private mount namespace), HOME and the working
directory read-only among the rest. Plus hadolint on the Dockerfile and cfn-lint on every
deploy/ template, and the templates' scaling read the metric the runtime writes.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.client import invoke
from tests.conftest import ROOT, free_port, wait_answering
from worker.config import Config
from worker.telemetry import utilisation
from worker.telemetry.emf import DEFAULT_NAMESPACE

#: What the Dockerfile's builder stage copies (and .dockerignore lets through).
BUILD_INPUTS = ["pyproject.toml", "setup.py", "README.md", "ext", "worker", "handlers"]


#: Lambda's layout: the root filesystem read-only, /tmp writable. A private mount namespace
#: gives the command exactly that (nothing outside it sees the change).
READ_ONLY_ROOT = [
    "unshare",
    "-m",
    "--propagation",
    "private",
    "sh",
    "-c",
    'mount --bind /tmp /tmp && mount -o remount,bind,ro / && exec "$@"',
    "sh",
]


def _read_only_root_works() -> bool:
    probe = subprocess.run([*READ_ONLY_ROOT, "touch", "/var/tmp/.rw-probe"], capture_output=True)
    return probe.returncode != 0 and b"Read-only file system" in probe.stderr


class Installed:
    def __init__(self, venv: Path, readonly: Path) -> None:
        self.python = str(venv / "bin" / "python")
        self.readonly = readonly

    def env(self, **extra: str) -> dict[str, str]:
        """The image's environment, but bound to 127.0.0.1 (tests talk to nothing else)."""
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
        return {
            **keep,
            "HOME": str(self.readonly),
            "LAMBDA_TASK_ROOT": str(self.readonly),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "WORKER_HOST": "127.0.0.1",
            **extra,
        }


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    # Outside /tmp: under the read-only root, as an image's site-packages is.
    base = Path(tempfile.mkdtemp(prefix="image-test-", dir="/var/tmp"))
    try:
        src = base / "src"
        src.mkdir()
        for name in BUILD_INPUTS:
            if (ROOT / name).is_dir():
                shutil.copytree(
                    ROOT / name,
                    src / name,
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c"),
                )
            else:
                shutil.copy2(ROOT / name, src / name)
        dist = base / "dist"
        # The builder stage's command, word for word.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-cache-dir",
                "--no-deps",
                "--wheel-dir",
                str(dist),
                ".",
            ],
            cwd=src,
            check=True,
            capture_output=True,
        )
        wheels = list(dist.glob("runtime_worker-*.whl"))
        assert len(wheels) == 1, wheels
        assert "-cp" in wheels[0].name and "none-any" not in wheels[0].name  # extension built
        venv = base / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--quiet", str(wheels[0])],
            check=True,
            capture_output=True,
        )
        shutil.rmtree(src)
        readonly = base / "task"
        readonly.mkdir()
        readonly.chmod(0o555)
        yield Installed(venv, readonly)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run(
    installed: Installed, argv: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    assert _read_only_root_works(), "cannot make a read-only root here (unshare -m)"
    return subprocess.Popen(
        [*READ_ONLY_ROOT, installed.python, "-m", "worker", *argv],
        cwd=installed.readonly,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    wait_answering(f"http://127.0.0.1:{port}/_worker/ready", proc, log.read_text, 60)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.terminate()
    return proc.wait(timeout=30)


def test_the_installed_package_is_not_the_source_tree(installed: Installed) -> None:
    out = subprocess.run(
        [
            installed.python,
            "-c",
            "import worker, worker.classify as c; print(worker.__file__, c.classify.backend)",
        ],
        cwd=installed.readonly,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path, backend = out.split()
    assert str(ROOT) not in path and "site-packages" in path
    assert backend == "extension"  # the compiled classifier shipped in the wheel


def test_the_installed_code_is_compiled_so_no_cold_start_compiles_it(installed: Installed) -> None:
    """The image sets PYTHONDONTWRITEBYTECODE (its root is read-only): only bytecode the
    install wrote spares every cold start compiling the runtime's source."""
    out = subprocess.run(
        [
            installed.python,
            "-c",
            "import importlib.util as u, os, pathlib, worker, handlers.echo as h;"
            "missing = [str(p) for m in (worker, h) for p in pathlib.Path(m.__file__).parent.rglob"
            "('*.py') if not os.path.exists(u.cache_from_source(str(p)))]; print(len(missing))",
        ],
        cwd=installed.readonly,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    ).stdout
    assert out.strip() == "0"


def test_ecs_mode_serves_http_read_only(installed: Installed, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    # ENTRYPOINT ["python", "-m", "worker"] + CMD ["handlers.echo.handler"], no Runtime API.
    proc = _run(installed, ["handlers.echo.handler"], installed.env(WORKER_PORT=str(port)), log)
    try:
        _wait_ready(port, proc, log)
        assert asyncio.run(invoke(port, {"from": "ecs"})).json() == {"from": "ecs"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_worker/health", timeout=2) as r:
            assert r.status == 200  # what the HEALTHCHECK asks
    finally:
        assert _stop(proc) == 0
    assert list(installed.readonly.iterdir()) == []  # nothing written outside /tmp
    assert '"message":"serving"' in log.read_text()


def test_lambda_mode_under_the_emulator_read_only(installed: Installed, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "emulate.log"
    # The emulator sets AWS_LAMBDA_RUNTIME_API for the image's command: Lambda mode.
    argv = [
        "emulate",
        "--port",
        str(port),
        "--",
        installed.python,
        "-m",
        "worker",
        "handlers.echo.handler",
    ]
    proc = _run(installed, argv, installed.env(), log)
    try:
        _wait_ready(port, proc, log)
        assert asyncio.run(invoke(port, {"from": "lambda"})).json() == {"from": "lambda"}
    finally:
        assert _stop(proc) == 0
    assert list(installed.readonly.iterdir()) == []
    # `worker HANDLER` chose Lambda mode: it serves the Runtime API's address, not HTTP.
    assert re.search(r'"message":"serving".*"address":"127\.0\.0\.1:\d+"', log.read_text())


def test_hadolint_passes_on_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or "hadolint"
    res = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("template", sorted(p.name for p in (ROOT / "deploy").glob("*.yaml")))
def test_cfn_lint_passes_on_every_template(template: str) -> None:
    res = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(ROOT / "deploy" / template)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_template_is_linted() -> None:
    assert {p.name for p in (ROOT / "deploy").glob("*.yaml")} == {
        "ecs.yaml",
        "lambda.yaml",
        "lambda-lmi.yaml",
    }


def _template(name: str) -> dict[str, Any]:
    """A template as CloudFormation reads it (short-form tags as their long forms)."""
    from cfnlint.decode import cfn_yaml

    loaded: dict[str, Any] = cfn_yaml.load(str(ROOT / "deploy" / name))
    return loaded


def _alarms(template: dict[str, Any]) -> dict[str, tuple[set[str], Any]]:
    """Each alarm's metric names (metric math's included) and threshold."""
    alarms = {}
    for name, res in template["Resources"].items():
        if res["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = res["Properties"]
        metrics = {props["MetricName"]} if "MetricName" in props else set()
        for query in props.get("Metrics", []):
            if "MetricStat" in query:
                metrics.add(query["MetricStat"]["Metric"]["MetricName"])
        alarms[name] = (metrics, props["Threshold"])
    return alarms


def _env(template: dict[str, Any], task: str) -> dict[str, Any]:
    [container] = template["Resources"][task]["Properties"]["ContainerDefinitions"]
    return {pair["Name"]: pair["Value"] for pair in container["Environment"]}


@pytest.mark.parametrize(
    ("policy", "task"),
    [("HttpScaling", "HttpTaskDefinition"), ("WorkerUtilizationScaling", "WorkerTaskDefinition")],
)
def test_ecs_services_track_the_utilisation_their_tasks_write(policy: str, task: str) -> None:
    ecs = _template("ecs.yaml")
    config = ecs["Resources"][policy]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    metric = config["CustomizedMetricSpecification"]
    env = _env(ecs, task)
    # The name the runtime writes (one constant), in the namespace and service its tasks use.
    assert metric["MetricName"] == utilisation.METRIC
    assert metric["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    assert ecs["Parameters"]["MetricsNamespace"]["Default"] == DEFAULT_NAMESPACE
    assert metric["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert metric["Statistic"] == "Average"  # over every process of every task
    assert Config.from_env({"WORKER_EMF_INTERVAL": env["WORKER_EMF_INTERVAL"]}).emf_interval > 0
    assert 0 < ecs["Parameters"]["TargetUtilization"]["Default"] <= 1  # a share, as written


def test_ecs_scales_on_backlog_and_schedule_above_a_warm_floor_not_on_cpu() -> None:
    ecs = _template("ecs.yaml")
    res = ecs["Resources"]
    policies = [r["Properties"] for r in res.values() if r["Type"].endswith("ScalingPolicy")]
    assert not any("PredefinedMetricSpecification" in str(p) for p in policies)
    backlog = res["WorkerScaling"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    queries = backlog["CustomizedMetricSpecification"]["Metrics"]
    names = {q["MetricStat"]["Metric"]["MetricName"] for q in queries if "MetricStat" in q}
    assert names == {"ApproximateNumberOfMessagesVisible", "RunningTaskCount"}
    http = res["HttpScalableTarget"]["Properties"]
    assert http["MinCapacity"] == res["HttpService"]["Properties"]["DesiredCount"]
    assert http["MinCapacity"] == {"Ref": "WarmTasks"}
    condition, actions, _ = http["ScheduledActions"]["Fn::If"]
    assert condition == "Scheduled" and ecs["Parameters"]["PeakSchedule"]["Default"] == ""
    assert [a["ScalableTargetAction"]["MinCapacity"] for a in actions] == [
        {"Ref": "PeakWarmTasks"},
        {"Ref": "WarmTasks"},
    ]


def test_lambda_alias_has_a_scheduled_and_a_target_tracking_policy() -> None:
    lam = _template("lambda.yaml")
    res = lam["Resources"]
    target = res["ProvisionedTarget"]["Properties"]
    assert target["ScalableDimension"] == "lambda:function:ProvisionedConcurrency"
    condition, actions, _ = target["ScheduledActions"]["Fn::If"]
    assert condition == "Scheduled" and lam["Parameters"]["PeakSchedule"]["Default"] == ""
    assert [a["ScalableTargetAction"]["MinCapacity"] for a in actions] == [
        {"Ref": "PeakProvisionedConcurrency"},
        {"Ref": "ProvisionedConcurrency"},
    ]
    policy = res["ProvisionedScalingPolicy"]["Properties"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["ScalingTargetId"] == {"Ref": "ProvisionedTarget"}


@pytest.mark.parametrize(
    ("template", "cpu"),
    [("lambda.yaml", None), ("lambda-lmi.yaml", "ExecutionEnvironmentCPUUtilization")],
)
def test_lambda_templates_alarm_on_throttles_errors_duration_and_cpu(
    template: str, cpu: str | None
) -> None:
    alarms = list(_alarms(_template(template)).values())
    assert ({"Throttles", "Invocations"}, 1) in alarms  # throttled share above 1 %
    assert ({"Errors"}, 0) in alarms
    assert any(metrics == {"Duration"} for metrics, _ in alarms)
    assert cpu is None or ({cpu}, 80) in alarms


def test_ecs_alarms_on_each_services_cpu_errors_and_slow_answers() -> None:
    alarms = _alarms(_template("ecs.yaml"))
    assert alarms["HttpCpuAlarm"] == alarms["WorkerCpuAlarm"] == ({"CPUUtilization"}, 80)
    assert alarms["HttpErrorAlarm"][0] == {"HTTPCode_Target_5XX_Count"}
    assert alarms["HttpDurationAlarm"][0] == {"TargetResponseTime"}
    # The runtime's own 429s over its requests, as the utilisation lines name them.
    throttles = {utilisation.THROTTLES_METRIC, utilisation.REQUESTS_METRIC}
    assert alarms["HttpThrottleAlarm"] == (throttles, 1)
    assert alarms["DeadLetterAlarm"][0] == {"ApproximateNumberOfMessagesVisible"}


@pytest.mark.parametrize("name", ["lambda.yaml", "lambda-lmi.yaml"])
def test_lambda_templates_offload_to_the_queue_the_ecs_sqs_service_consumes(name: str) -> None:
    lam = _template(name)
    env = lam["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert env["WORKER_OFFLOAD_QUEUE_URL"] == {
        "Fn::If": ["Offload", {"Ref": "OffloadQueueUrl"}, {"Ref": "AWS::NoValue"}]
    }
    assert lam["Parameters"]["OffloadQueueUrl"]["Default"] == ""  # optional: off unless given
    offload, absent = lam["Resources"]["ExecutionRole"]["Properties"]["Policies"]["Fn::If"][1:]
    [statement] = offload[0]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Ref": "OffloadQueueArn"}
    assert absent == {"Ref": "AWS::NoValue"}
    ecs = _template("ecs.yaml")
    # What the Lambda stack is given is the queue `worker sqs` consumes.
    assert ecs["Outputs"]["QueueUrl"]["Value"] == {"Ref": "Queue"}
    assert ecs["Outputs"]["QueueArn"]["Value"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    [container] = ecs["Resources"]["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert container["Command"][0] == "sqs" and {"Ref": "Queue"} in container["Command"]
    assert _env(ecs, "WorkerTaskDefinition")["WORKER_ROUTES"] == {"Ref": "Routes"}
