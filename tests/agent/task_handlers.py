"""Handlers the task tests configure by import path: `tests.agent.task_handlers:<name>`.

Async handlers note each run in `public.task_test_runs` (so tests see runs made in a
worker process too); the plain one notes its runs in PLAIN_RUNS (in-process tests).
"""

from __future__ import annotations

import asyncio
import threading
import time

from farm_agent.tasks import PermanentError, Task, current_context

CREATE_RUNS = """
CREATE TABLE IF NOT EXISTS public.task_test_runs (
    task_id text NOT NULL,
    type text NOT NULL,
    attempt integer NOT NULL,
    worker text NOT NULL,
    event text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""
PLAIN_RUNS: list[tuple[str, int, str]] = []


async def note(task: Task, event: str) -> None:
    """Record that `task` reached `event` on this worker."""
    context = current_context()
    async with context.database.connection() as connection:
        await connection.execute(
            "INSERT INTO public.task_test_runs (task_id, type, attempt, worker, event)"
            " VALUES ($1, $2, $3, $4, $5)",
            task.id,
            task.type,
            task.attempt,
            context.worker_id,
            event,
        )


async def succeed(task: Task) -> None:
    await note(task, "done")


async def fail(task: Task) -> None:
    """Always raises; the message carries whatever the payload's `detail` says."""
    await note(task, "failed")
    detail = task.payload.get("detail", "") if isinstance(task.payload, dict) else ""
    raise RuntimeError(f"sensor offline on attempt {task.attempt} {detail}".strip())


async def permanent(task: Task) -> None:
    await note(task, "failed")
    raise PermanentError("valve 7 does not exist")


async def slow(task: Task) -> None:
    """Runs for payload["seconds"], noting its start and its end."""
    await note(task, "started")
    await asyncio.sleep(task.payload["seconds"])
    await note(task, "finished")


async def mixed(task: Task) -> None:
    """Behaves as payload["outcome"] says: ok, permanent, flaky (fails once), broken."""
    outcome = task.payload["outcome"]
    await asyncio.sleep(task.payload.get("sleep", 0))
    if outcome == "permanent":
        raise PermanentError("cannot ever work")
    if outcome == "broken" or (outcome == "flaky" and task.attempt == 1):
        raise RuntimeError(f"failed attempt {task.attempt}")


async def noop(task: Task) -> None:
    """Does nothing: the worker's own cost, for the benchmark."""


def plain_sleepy(task: Task) -> None:
    """A plain function: the first attempt sleeps past its timeout, later ones return."""
    PLAIN_RUNS.append((task.id, task.attempt, threading.current_thread().name))
    if task.attempt == 1:
        time.sleep(task.payload["seconds"])


async def async_sleepy(task: Task) -> None:
    """Like plain_sleepy, but async: the first attempt is cancelled at the timeout."""
    await note(task, "started")
    if task.attempt == 1:
        await asyncio.sleep(task.payload["seconds"])
    await note(task, "done")


async def times_out_on_its_own(task: Task) -> None:
    """Raises a TimeoutError of its own, well within the task's timeout."""
    await note(task, "started")
    async with asyncio.timeout(0.01):
        await asyncio.sleep(5)
