"""Loading a user's handler from Lambda's `module.function` (or `path/module.function`)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from worker.errors import LambdaError, stack_of
from worker.router import Router

HandlerFn = Callable[[Any, Any], Any]


@dataclasses.dataclass(frozen=True)
class Handler:
    """A loaded handler and how it must be called."""

    spec: str
    fn: HandlerFn
    is_async: bool
    #: A dispatching handler (`worker.router.Router`) picks the function per event:
    #: `resolve(event, context, kind, route) -> (fn, is_async)`.
    resolve: Callable[[Any, Any, str | None, str], tuple[HandlerFn, bool]] | None = None


def split_spec(spec: str) -> tuple[str, str]:
    """`module.function`, `path/module.function` or `module:function` -> (module, attr)."""
    if ":" in spec:
        module, _, attr = spec.partition(":")
    else:
        module, _, attr = spec.rpartition(".")
    if not module or not attr:
        raise LambdaError(
            "Runtime.MalformedHandlerName",
            f"Bad handler '{spec}': not enough values to unpack (expected 2, got 1)",
        )
    # Lambda's path form: a directory path becomes a package path (namespace packages
    # need no __init__.py), as the official runtime client resolves it.
    return module.strip("/").replace("/", "."), attr


def load(spec: str, task_root: str | None = None) -> Handler:
    """Import the handler's module and find the callable, raising Lambda's init errors."""
    module_name, attr = split_spec(spec)
    root = task_root or os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as exc:
        raise LambdaError(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {exc}",
            [f'  File "{exc.filename}" Line {exc.lineno}\n    {(exc.text or "").strip()}\n'],
        ) from exc
    except ImportError as exc:
        raise LambdaError(
            "Runtime.ImportModuleError",
            f"Unable to import module '{module_name}': {exc}",
            stack_of(exc),
        ) from exc
    except Exception as exc:
        raise LambdaError(
            type(exc).__name__,
            f"Unable to import module '{module_name}': {exc}",
            stack_of(exc),
        ) from exc
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            break
    if target is None or not callable(target):
        raise LambdaError(
            "Runtime.HandlerNotFound", f"Handler '{attr}' missing on module '{module_name}'"
        )
    if isinstance(target, Router):
        return Handler(spec=spec, fn=target, is_async=target.is_async, resolve=target.resolve)
    is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(target, "__call__", None)  # noqa: B004 - async callable objects
    )
    return Handler(spec=spec, fn=target, is_async=is_async)
