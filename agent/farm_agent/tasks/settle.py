"""Leases and outcomes: messages stay invisible while their handlers run, then are settled.

Every message a worker read is held here. While a handler runs, the message's visibility
timeout is extended (pgmq.set_vt) every third of it, so no other worker is handed a slow
task. Outcomes are committed in batches, one statement per kind and queue (see sql.py):
archive, retry after a backoff, or dead letter. Extending and settling take turns, so a
lease is never extended after its retry set the backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from farm_agent.config import TasksConfig
from farm_agent.failures import DATABASE_ERRORS, describe_failure, is_connection_failure
from farm_agent.tasks import sql
from farm_agent.tasks.database import TaskDatabase
from farm_agent.tasks.envelope import Delivery

_LOGGER = logging.getLogger(__name__)

SUCCEEDED = "succeeded"
RETRIED = "retried"
DEAD_LETTERED = "dead_lettered"
RETRY_AFTER_ERROR_S = (0.2, 5.0)
# At most one commit per this many seconds: a commit costs about as much as 50 tasks in
# it (a round trip, PGMQ's dynamic SQL, the figures upsert), so outcomes that come in
# quick succession wait for the next one. A lone outcome is committed at once.
COMMIT_EVERY_S = 0.02


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a delivery ends: archived, retried after `delay_s`, or dead-lettered with `body`."""

    kind: str
    delay_s: int = 0
    body: str = ""
    # Dead-lettered because its handler failed (counted as `failed` too).
    handler_failed: bool = False


@dataclass(slots=True)
class _Lease:
    delivery: Delivery
    extended_at: float
    outcome: Outcome | None = None


class Settler:
    """Holds the worker's leases and commits their outcomes; `run()` does both in turn."""

    def __init__(self, database: TaskDatabase, tasks: TasksConfig) -> None:
        self._database = database
        self._tasks = tasks
        self._leases: dict[tuple[str, int], _Lease] = {}
        self._pending: list[_Lease] = []
        self._wake = asyncio.Event()
        self._turn = asyncio.Lock()
        self._last_error: str | None = None
        self._committed_at = float("-inf")

    @property
    def extend_every_s(self) -> float:
        return max(0.1, self._tasks.visibility_timeout_s / 6)

    @property
    def held(self) -> int:
        """Messages held: being worked on, or settled but not yet committed."""
        return len(self._leases)

    def holds(self, delivery: Delivery) -> bool:
        """Whether this worker already holds the message (running, or settled, not committed)."""
        return (delivery.queue, delivery.msg_id) in self._leases

    def hold(self, delivery: Delivery) -> None:
        self._leases[(delivery.queue, delivery.msg_id)] = _Lease(delivery, time.monotonic())

    def settle(self, delivery: Delivery, outcome: Outcome) -> None:
        lease = self._leases[(delivery.queue, delivery.msg_id)]
        lease.outcome = outcome
        self._pending.append(lease)
        self._wake.set()

    async def run(self) -> None:
        """Commit outcomes as they come and extend leases in time, until cancelled."""
        pause_s = RETRY_AFTER_ERROR_S[0]
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow the
            # cancellation that stops this loop when the wake-up comes at the same time.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.extend_every_s):
                    await self._wake.wait()
            since_s = time.monotonic() - self._committed_at
            if since_s < COMMIT_EVERY_S:
                await asyncio.sleep(COMMIT_EVERY_S - since_s)
            self._wake.clear()
            self._committed_at = time.monotonic()
            try:
                await self.commit()
                await self.extend()
            except DATABASE_ERRORS as err:
                self._report(err)
                await asyncio.sleep(pause_s)
                pause_s = min(pause_s * 2, RETRY_AFTER_ERROR_S[1])
                self._wake.set()
            else:
                pause_s = RETRY_AFTER_ERROR_S[0]

    async def commit(self) -> None:
        """Commit every outcome settled so far; what fails stays pending for the next try."""
        async with self._turn:
            pending, self._pending = self._pending, []
            groups = _grouped(pending)
            try:
                while groups:
                    (kind, queue), leases = groups[0]
                    async with self._database.connection(keep="settler") as connection:
                        await self._commit_group(connection, kind, queue, leases)
                    groups.pop(0)
                    for lease in leases:
                        self._leases.pop((lease.delivery.queue, lease.delivery.msg_id), None)
            finally:
                self._pending[:0] = [lease for _, leases in groups for lease in leases]

    async def _commit_group(
        self, connection: asyncpg.Connection, kind: str, queue: str, leases: list[_Lease]
    ) -> None:
        deliveries = [lease.delivery for lease in leases]
        ids = [delivery.msg_id for delivery in deliveries]
        types = [delivery.type_label for delivery in deliveries]
        outcomes = [lease.outcome for lease in leases if lease.outcome is not None]
        if kind == SUCCEEDED:
            enqueued = [delivery.enqueued_at for delivery in deliveries]
            started = [delivery.started_at for delivery in deliveries]
            await connection.fetchval(sql.COMPLETE, queue, ids, types, enqueued, started)
        elif kind == RETRIED:
            delays = [outcome.delay_s for outcome in outcomes]
            await connection.fetchval(sql.RETRY, queue, ids, delays, types)
        else:
            bodies = [outcome.body for outcome in outcomes]
            failed = [outcome.handler_failed for outcome in outcomes]
            dead_letters = self._tasks.dead_letter_queue
            await connection.fetchval(
                sql.DEAD_LETTER, queue, ids, bodies, types, failed, dead_letters
            )

    async def extend(self) -> None:
        """Extend the leases a third of a visibility timeout old."""
        async with self._turn:
            now = time.monotonic()
            due = [
                lease
                for lease in self._leases.values()
                if now - lease.extended_at >= self._tasks.visibility_timeout_s / 3
            ]
            if not due:
                return
            await self._set_leases(due, self._tasks.visibility_timeout_s)
            for lease in due:
                lease.extended_at = now

    async def release_unsettled(self) -> int:
        """Give back the messages whose handler never finished (visible again at once)."""
        async with self._turn:
            unsettled = [lease for lease in self._leases.values() if lease.outcome is None]
            if unsettled:
                await self._set_leases(unsettled, 0)
            for lease in unsettled:
                self._leases.pop((lease.delivery.queue, lease.delivery.msg_id), None)
            return len(unsettled)

    async def _set_leases(self, leases: Iterable[_Lease], seconds: int) -> None:
        by_queue: dict[str, list[int]] = defaultdict(list)
        for lease in leases:
            by_queue[lease.delivery.queue].append(lease.delivery.msg_id)
        async with self._database.connection(keep="settler") as connection:
            for queue, ids in by_queue.items():
                await connection.fetch(sql.SET_LEASE, queue, sorted(ids), seconds)

    def _report(self, error: BaseException) -> None:
        # The database logs connection failures; anything else is logged here, once.
        reason = describe_failure(error)
        if not is_connection_failure(error) and reason != self._last_error:
            _LOGGER.error("settling tasks failed, retrying: %s", reason)
        self._last_error = reason


def _grouped(leases: list[_Lease]) -> list[tuple[tuple[str, str], list[_Lease]]]:
    # One outcome per message: a message twice in one statement would be sent twice.
    latest = {(lease.delivery.queue, lease.delivery.msg_id): lease for lease in leases}
    groups: dict[tuple[str, str], list[_Lease]] = defaultdict(list)
    for lease in latest.values():
        assert lease.outcome is not None
        groups[(lease.outcome.kind, lease.delivery.queue)].append(lease)
    return list(groups.items())
