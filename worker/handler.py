"""Loading a user's handler from Lambda's `module.function` (or `path/module.function`), or
a web app from `module:app`.

What the named object is, decided once at import:
- an ASGI app (FastAPI, Starlette, Quart, Django's ASGIHandler…): an async callable (a
  coroutine function, or an object whose `__call__` is one) taking three positional
  parameters without defaults, `(scope, receive, send)`;
- a WSGI app (Flask, Django's WSGIHandler…): a plain callable whose second positional
  parameter is named `start_response` (PEP 3333's name, which frameworks keep), or an
  instance of a known WSGI app class. A Lambda handler takes `(event, context)`: two
  parameters, neither named so, which is how the two are told apart. A Mangum instance
  is a Lambda handler (`__call__(self, event, context)`);
- anything else callable is a Lambda handler; an `async def` that yields (an async
  generator function) streams its items (`worker.streaming`).
"""

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

#: Classes whose instances are WSGI apps whatever their `__call__` looks like, by
#: qualified name (nothing is imported to check).
WSGI_CLASSES = frozenset(
    (
        "flask.app.Flask",
        "django.core.handlers.wsgi.WSGIHandler",
    )
)


#: Packages whose handlers put a web framework behind a Lambda handler.
ADAPTERS = frozenset(("mangum", "apig_wsgi"))


@dataclasses.dataclass(frozen=True)
class Handler:
    """A loaded handler and how it must be called."""

    spec: str
    fn: HandlerFn
    is_async: bool
    #: A dispatching handler (`worker.router.Router`) picks the function per event:
    #: `resolve(event, context, kind, route) -> (fn, is_async)`.
    resolve: Callable[[Any, Any, str | None, str], tuple[HandlerFn, bool]] | None = None
    #: A web app (`app_kind` "asgi" or "wsgi"): `fn` serves the front's `HttpRequest`
    #: events natively and hands other events to the Lambda HTTP adapter.
    app: Any = None
    app_kind: str | None = None

    @property
    def runs_a_framework(self) -> bool:
        """Whether each call runs a web framework: a web app, or one behind Mangum or
        apig-wsgi. Such a call costs far more CPU than a process's wake-ups, so Lambda
        mode gives it a process per core (`Config.worker_processes`)."""
        if self.app_kind is not None:
            return True
        owner = getattr(type(self.fn), "__module__", "") or ""
        module = getattr(self.fn, "__module__", "") or ""
        return owner.split(".")[0] in ADAPTERS or module.split(".")[0] in ADAPTERS


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
    name = module.strip("/").replace("/", ".")
    if any(not part or part.startswith(".") for part in name.split(".")) or "\x00" in name:
        # `../x.fn`, `a//b.fn`, `.mod.fn`: no module has such a name (and a relative
        # import would need a package to be relative to).
        raise LambdaError(
            "Runtime.MalformedHandlerName", f"Bad handler '{spec}': not a module path"
        )
    return name, attr


def load(spec: str, task_root: str | None = None) -> Handler:
    """Import the handler's module and find the callable, raising Lambda's init errors."""
    root = task_root or os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    if spec.startswith("/"):
        # An absolute path (`/opt/app/mod.fn`): its directory is where the module is.
        root, _, spec = spec.rpartition("/")
        root = root or "/"
    module_name, attr = split_spec(spec)
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
        # As awslambdaric reports it: the message names the module, with no stack.
        raise LambdaError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc
    except Exception as exc:
        # Any other failure at import is reported as the exception itself.
        raise LambdaError(type(exc).__name__, str(exc), stack_of(exc)) from exc
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
    kind = app_kind(target)
    # The adapters load only for an app: a plain handler's cold start skips them.
    if kind == "asgi":
        from worker.sources.asgi import AsgiApp

        return Handler(spec=spec, fn=AsgiApp(target), is_async=True, app=target, app_kind=kind)
    if kind == "wsgi":
        from worker.sources.wsgi import WsgiApp

        return Handler(spec=spec, fn=WsgiApp(target), is_async=False, app=target, app_kind=kind)
    if inspect.isasyncgenfunction(target):
        return Handler(spec=spec, fn=_streams(target), is_async=True)
    return Handler(spec=spec, fn=target, is_async=_is_async(target))


def _is_async(target: Any) -> bool:
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(target, "__call__", None)  # noqa: B004 - async callable objects
    )


def app_kind(target: Any) -> str | None:
    """The kind of web app `target` is ("asgi", "wsgi"), or None for a Lambda handler (the
    rule is in the module's docstring)."""
    if inspect.isclass(target):
        return None  # a class is called to make an instance, not to serve
    names = {f"{c.__module__}.{c.__qualname__}" for c in type(target).__mro__}
    if names & WSGI_CLASSES:
        return "wsgi"
    params = _positional(target)
    if params is None:
        return None
    if _is_async(target):
        required = [p for p in params if p.default is inspect.Parameter.empty]
        return "asgi" if len(params) == 3 and len(required) == 3 else None
    if len(params) >= 2 and params[1].name == "start_response":
        return "wsgi"
    return None


def _positional(target: Any) -> list[inspect.Parameter] | None:
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # some builtins have none
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p for p in signature.parameters.values() if p.kind in kinds]


def _streams(target: Callable[[Any, Any], Any]) -> HandlerFn:
    """An async generator function as an async handler that returns its generator (the
    pool streams it: `worker.streaming.pump`)."""

    async def streaming(event: Any, context: Any) -> Any:
        return target(event, context)

    streaming.__qualname__ = getattr(target, "__qualname__", "streaming")
    streaming.__wrapped__ = target  # type: ignore[attr-defined]
    return streaming
