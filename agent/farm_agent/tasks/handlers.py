"""Handlers: found by import path ("package.module:function"), run async or on a thread.

A plain function runs on a daemon thread of its own, so a handler that overruns its
timeout cannot keep the process from exiting; its slot stays taken until it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import inspect
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from farm_agent.tasks.task import Task

HandlerFunction = Callable[[Task], Any]


class HandlerImportError(ValueError):
    """A configured handler that cannot be loaded; the message names the config key."""


@dataclass(frozen=True, slots=True)
class Handler:
    """A task type's handler, resolved from its import path."""

    path: str
    function: HandlerFunction
    is_async: bool


def resolve(path: str) -> HandlerFunction:
    """The callable at "package.module:attribute" (the attribute may be dotted)."""
    module_name, _, attribute = path.partition(":")
    module = importlib.import_module(module_name)
    found: Any = module
    for part in attribute.split("."):
        found = getattr(found, part)
    if not callable(found):
        raise TypeError(f"{path} is not callable")
    function: HandlerFunction = found
    return function


def load_handlers(paths: Mapping[str, str]) -> dict[str, Handler]:
    """Every configured handler, or HandlerImportError naming `tasks.handlers.<type>`."""
    handlers = {}
    for task_type, path in paths.items():
        try:
            function = resolve(path)
        except (ImportError, AttributeError, TypeError) as err:
            raise HandlerImportError(
                f"tasks.handlers.{task_type}: cannot load {path} ({err.__class__.__name__}: {err})"
            ) from None
        handlers[task_type] = Handler(path, function, _is_async(function))
    return handlers


def _is_async(function: HandlerFunction) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - an instance with an async __call__
    )


def start_on_thread(handler: Handler, task: Task) -> asyncio.Future[Any]:
    """Run a plain handler on a daemon thread; the future resolves on the event loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        result, error = None, None
        try:
            result = context.run(handler.function, task)
        except BaseException as err:  # handed to the loop, never lost on the thread
            error = err
        # The loop is gone when the worker exited while this handler overran.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name=f"task-{task.type}", daemon=True).start()
    return future
