"""The `worker` package: its public names, loaded on first use, and what a bare import costs."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_a_bare_import_loads_none_of_the_optional_parts() -> None:
    loaded = run(
        "import sys, worker; print(sorted(m for m in sys.modules if m in ("
        "'worker.aws', 'worker.idempotency', 'worker.inference.host',"
        " 'botocore', 'aiobotocore')))"
    )
    assert loaded == "[]"


def test_public_names_resolve_on_first_use() -> None:
    import worker
    from worker.context import LambdaContext
    from worker.errors import LambdaError
    from worker.idempotency import idempotent
    from worker.inference.registry import model

    assert worker.LambdaContext is LambdaContext
    assert worker.LambdaError is LambdaError
    assert worker.idempotent is idempotent
    assert worker.model is model
    assert set(worker.__all__) <= set(dir(worker))


def test_durable_stays_the_decorator_after_its_subpackage_is_imported() -> None:
    # The runtime imports worker.durable.service in every worker process.
    out = run(
        "import types, worker, worker.durable.service, worker.durable.engine;"
        " print(callable(worker.durable), isinstance(worker.durable, types.ModuleType))"
    )
    assert out == "True False"


def test_an_unknown_name_is_an_attribute_error() -> None:
    import worker

    try:
        worker.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("worker.no_such_name resolved")
