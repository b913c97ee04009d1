"""The worker: reads tasks by priority, runs their handlers, settles every one.

`concurrency` handlers run at once. Each round reads as many messages as slots are free,
highest priority first (fairness.py keeps lower ones from starving). A handler that
returns has its task archived; one that raises is retried after a backoff until
`max_attempts`, then dead-lettered; PermanentError, a type without handler, a message
that is no task, and a task read more than `max_attempts` times (its workers kept
dying) are dead-lettered at once. On stop, no new task is read and the running ones get
`drain_s` to finish; the rest are given back to the queue for another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Coroutine
from typing import Any

import asyncpg

from farm_agent.config import AgentConfig
from farm_agent.failures import DATABASE_ERRORS, describe_failure, is_connection_failure
from farm_agent.masking import secrets_of
from farm_agent.mqtt import ConfirmedPublisher
from farm_agent.tasks import sql
from farm_agent.tasks.context import TaskContext, set_context
from farm_agent.tasks.database import TaskDatabase
from farm_agent.tasks.envelope import Delivery, dead_letter_body, read_reading, read_task
from farm_agent.tasks.fairness import FairOrder
from farm_agent.tasks.handlers import Handler, start_on_thread
from farm_agent.tasks.heartbeat import Heartbeat
from farm_agent.tasks.metrics import TaskMetrics
from farm_agent.tasks.settle import DEAD_LETTERED, RETRIED, SUCCEEDED, Outcome, Settler
from farm_agent.tasks.task import PermanentError, Task

_LOGGER = logging.getLogger(__name__)

IDLE_MIN_S = 0.05
ERROR_PAUSE_S = (0.5, 10.0)
MAX_ERROR_LENGTH = 1000
EAGER_START = sys.version_info >= (3, 12)


_SUCCESS = Outcome(SUCCEEDED)


class TaskTimeoutError(TimeoutError):
    """A handler ran longer than its type's timeout."""


class Worker:
    """One worker process: `await run(stop)` returns after the drain."""

    def __init__(
        self,
        config: AgentConfig,
        handlers: dict[str, Handler],
        metrics: TaskMetrics | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.config = config
        self.tasks = tasks = config.tasks
        self.handlers = handlers
        self.metrics = metrics or TaskMetrics()
        self.id = worker_id or f"{config.agent_id}:{os.getpid()}"
        self.database = TaskDatabase(
            config.backend, tasks.concurrency + 3, lambda c: sql.set_up_tasks(c, config)
        )
        self.settler = Settler(self.database, tasks)
        self.heartbeat = Heartbeat(self.database, tasks, self.id, self.metrics)
        self._mqtt = ConfirmedPublisher(
            config.mqtt, f"farm-agent-{config.agent_id}-tasks-{os.getpid()}"
        )
        self._order = FairOrder(
            (
                tasks.queue_for("high"),
                tasks.queue_for("normal"),
                *(source.queue for source in tasks.sources),
                tasks.queue_for("low"),
            ),
            tasks.max_wait_s,
        )
        self._overdue_sql = sql.overdue_statement(self._order.lower_queues)
        self._read_statements: dict[tuple[str, ...], str] = {}
        self._source_types = {source.queue: source.type for source in tasks.sources}
        self._secrets = secrets_of(config)
        self._occupied = 0
        self._slot_freed = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        # Handlers cancelled because they ran past their timeout.
        self._overran: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        """Handlers running now (an overrunning plain handler's thread included)."""
        return self._occupied

    async def run(self, stop: asyncio.Event) -> None:
        set_context(TaskContext(self.config, self.id, self.database, self._mqtt))
        loop = asyncio.get_running_loop()
        settling = loop.create_task(self.settler.run(), name="farm-agent-task-settle")
        beating = loop.create_task(
            self.heartbeat.run(lambda: self.running), name="farm-agent-task-heartbeat"
        )
        _LOGGER.info(
            "worker %s taking tasks from %s (concurrency %d)",
            self.id,
            ", ".join(self._order.queues),
            self.tasks.concurrency,
        )
        try:
            await self._take_tasks(stop)
        finally:
            await self._drain()
            await _cancel(beating)
            await _cancel(settling)
            await self.heartbeat.stopped()
            await self._mqtt.close()
            await self.database.close()

    async def _take_tasks(self, stop: asyncio.Event) -> None:
        idle_s, error_s = IDLE_MIN_S, ERROR_PAUSE_S[0]
        while not stop.is_set():
            free = self.tasks.concurrency - self._occupied
            if free <= 0:
                self._slot_freed.clear()
                await _first(stop, self._slot_freed)
                # Handlers that finish together free their slots in the same turn: read once.
                await asyncio.sleep(0)
                continue
            try:
                deliveries = await self._read(free)
            except DATABASE_ERRORS as err:
                if not is_connection_failure(err):
                    _LOGGER.error("reading tasks failed: %s", describe_failure(err))  # noqa: TRY400
                await _first(stop, timeout_s=error_s)
                error_s = min(error_s * 2, ERROR_PAUSE_S[1])
                continue
            error_s = ERROR_PAUSE_S[0]
            if not deliveries:
                await _first(stop, timeout_s=idle_s)
                idle_s = min(idle_s * 2, self.tasks.poll_interval_s)
                continue
            idle_s = IDLE_MIN_S
            for delivery in deliveries:
                if self.settler.holds(delivery):
                    # Handed out again while this worker still holds it (its outcome waits to
                    # commit, or a lease extension came late): settling it once is enough.
                    continue
                self._start(delivery)

    async def _read(self, free: int) -> list[Delivery]:
        """Up to `free` messages, in the fair order; each one's lease starts now."""
        order = self._order
        deliveries: list[Delivery] = []
        async with self.database.connection(keep="reader") as connection:
            now = time.monotonic()
            if order.lower_queues and order.due(now):
                row = await connection.fetchrow(
                    self._overdue_sql, order.overdue_after_s, self.tasks.concurrency
                )
                assert row is not None
                order.checked(now, dict(zip(order.lower_queues, row, strict=True)))
            plan = order.plan()
            arguments: list[object] = [self.tasks.visibility_timeout_s, free]
            for queue, limit in plan:
                arguments.extend((queue, limit))
            rows = await connection.fetch(
                self._read_sql(tuple(queue for queue, _ in plan)), *arguments
            )
        left = free
        for index, (queue, limit) in enumerate(plan):
            mine = [row for row in rows if row["queue"] == index]
            wanted = min(left, free if limit is None else limit)
            order.took(queue, wanted, len(mine), limit)
            left -= len(mine)
            deliveries.extend(self._delivery(queue, row) for row in mine)
        return deliveries

    def _read_sql(self, queues: tuple[str, ...]) -> str:
        statement = self._read_statements.get(queues)
        if statement is None:
            statement = self._read_statements[queues] = sql.read_statement(queues)
        return statement

    def _delivery(self, queue: str, row: asyncpg.Record) -> Delivery:
        message_text: str = row["message"]
        read_ct: int = row["read_ct"]
        message = json.loads(message_text)
        source_type = self._source_types.get(queue)
        if source_type is not None:
            found = read_reading(message, message_text, source_type, read_ct)
        else:
            found = read_task(message, row["payload"] or "null", read_ct)
        return Delivery(
            queue=queue,
            msg_id=row["msg_id"],
            read_ct=read_ct,
            enqueued_at=row["enqueued_at"],
            started_at=row["started_at"],
            message_text=message_text,
            task=found if isinstance(found, Task) else None,
            problem=found if isinstance(found, str) else None,
            from_source=source_type is not None,
        )

    def _start(self, delivery: Delivery) -> None:
        self._occupied += 1
        self.settler.hold(delivery)
        running = _start_task(self._handle(delivery))
        if running.done():
            return
        self._running.add(running)
        running.add_done_callback(self._running.discard)
        task = delivery.task
        if task is not None:
            # The handler's timeout, armed only for a handler that waits: one that finishes
            # in its first step (eagerly started, Python 3.12+) costs no timer.
            loop = asyncio.get_running_loop()
            timer = loop.call_later(self.tasks.timeout_for(task.type), self._overrun, running)
            running.add_done_callback(lambda _: timer.cancel())

    def _overrun(self, running: asyncio.Task[None]) -> None:
        self._overran.add(running)
        running.add_done_callback(self._overran.discard)
        running.cancel()

    async def _handle(self, delivery: Delivery) -> None:
        started = time.monotonic()
        try:
            outcome = await self._outcome(delivery)
        finally:
            self._free_slot()
        ran = time.monotonic() - started if delivery.task is not None else None
        self.metrics.settled(delivery.type_label, outcome.kind, ran)
        self.settler.settle(delivery, outcome)

    def _free_slot(self, *_: object) -> None:
        self._occupied -= 1
        self._slot_freed.set()

    def _refusal(self, delivery: Delivery) -> str | None:
        """Why a delivery is dead-lettered without running, or None to run it."""
        task, max_attempts = delivery.task, self.tasks.max_attempts
        if task is None:
            return delivery.problem or "not a task"
        if delivery.read_ct > max_attempts:
            return (
                f"read {delivery.read_ct} times without finishing (tasks.max_attempts "
                f"{max_attempts}): the worker running it stopped or lost it each time"
            )
        if task.type not in self.handlers:
            return f"no handler for task type {task.type!r} (tasks.handlers)"
        return None

    async def _outcome(self, delivery: Delivery) -> Outcome:
        refusal = self._refusal(delivery)
        if refusal is not None:
            return self._dead_letter(delivery, refusal)
        task = delivery.task
        assert task is not None
        handler = self.handlers[task.type]
        try:
            await self._run_handler(handler, task)
        except PermanentError as err:
            return self._dead_letter(delivery, self._describe(err), handler_failed=True)
        except Exception as err:
            error = self._describe(err)
            if delivery.read_ct >= self.tasks.max_attempts:
                return self._dead_letter(delivery, error, handler_failed=True, exc=err)
            delay_s = backoff_s(self.tasks.backoff_base_s, self.tasks.backoff_max_s, task.attempt)
            _LOGGER.warning(
                "task %s %s attempt %d failed, retrying in %d s: %s",
                task.type,
                task.id,
                task.attempt,
                delay_s,
                error,
                exc_info=err,
            )
            return Outcome(RETRIED, delay_s=delay_s)
        return _SUCCESS

    async def _run_handler(self, handler: Handler, task: Task) -> None:
        thread = None
        try:
            if handler.is_async:
                await handler.function(task)
            else:
                thread = start_on_thread(handler, task)
                await asyncio.shield(thread)
        except asyncio.CancelledError:
            running = asyncio.current_task()
            if running is None or running not in self._overran:
                raise
            # Cancelled by the handler's timer (see _start), not by the stop.
            running.uncancel()
            if thread is not None:
                # The thread cannot be stopped: it keeps a slot until it returns.
                self._occupied += 1
                thread.add_done_callback(self._free_slot)
            raise _overran(task, self.tasks.timeout_for(task.type)) from None

    def _dead_letter(
        self,
        delivery: Delivery,
        error: str,
        *,
        handler_failed: bool = False,
        exc: BaseException | None = None,
    ) -> Outcome:
        task = delivery.task
        what = f"task {task.type} {task.id}" if task is not None else f"message {delivery.msg_id}"
        _LOGGER.error(
            "%s from %s dead-lettered after %d attempt(s): %s",
            what,
            delivery.queue,
            delivery.read_ct,
            error,
            exc_info=exc,
        )
        body = dead_letter_body(delivery, error, time.time())
        return Outcome(DEAD_LETTERED, body=body, handler_failed=handler_failed)

    def _describe(self, error: BaseException) -> str:
        """Class and message, no traceback, no secret, no NUL (PostgreSQL refuses it)."""
        message = str(error)
        text = f"{error.__class__.__name__}: {message}" if message else error.__class__.__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text.replace("\x00", "\ufffd")[:MAX_ERROR_LENGTH]

    async def _drain(self) -> None:
        running = set(self._running)
        if running:
            _LOGGER.info(
                "stopping: waiting up to %g s for %d running task(s)",
                self.tasks.drain_s,
                len(running),
            )
            _, unfinished = await asyncio.wait(running, timeout=self.tasks.drain_s)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        try:
            await self.settler.commit()
            given_back = await self.settler.release_unsettled()
        except DATABASE_ERRORS as err:
            _LOGGER.warning(
                "stopping: could not settle everything (%s); the queue hands it out again "
                "after the visibility timeout",
                describe_failure(err),
            )
            return
        if given_back:
            _LOGGER.warning("stopping: %d unfinished task(s) given back to the queue", given_back)
        _LOGGER.info("stopped")


def _start_task(coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task for a handler; from Python 3.12 its first step runs at once, so a handler
    that never waits finishes without a trip through the event loop."""
    loop = asyncio.get_running_loop()
    if EAGER_START:
        return asyncio.Task(coroutine, loop=loop, eager_start=True)
    return loop.create_task(coroutine)


def _overran(task: Task, timeout_s: float) -> TaskTimeoutError:
    return TaskTimeoutError(
        f"ran longer than {timeout_s:g} s (tasks.timeouts.{task.type}, "
        "default probes.thresholds.processing_s)"
    )


def backoff_s(base_s: float, max_s: float, attempt: int) -> int:
    """Seconds before retry n: min(max_s, base_s * 2^(n-1)), rounded up (set_vt's whole seconds)."""
    return max(1, math.ceil(min(max_s, base_s * 2.0 ** (attempt - 1))))


async def _first(
    *events: asyncio.Event,
    timeout_s: float | None = None,
) -> None:
    """Until one of the events is set, or the timeout passes."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
