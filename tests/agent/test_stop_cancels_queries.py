"""A daemon stopped while its queries wait still cancels them on the server, pooler and all.

Stopping cancels a probe round; asyncpg then cancels each query in flight with a cancel
request on a connection of its own. A daemon that exits before the server hangs up on
that request leaves the query running, and PgBouncer 1.18 (Debian 12's, the one these
tests run) dies of the half-sent request (pgbouncer#801): every client of the farm
loses its pooler because an agent restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import pytest

from farm_agent.database import close_quietly, finish_cancel_requests
from tests.support.agent import AgentProcess, with_secret
from tests.support.waiting import wait_until
from tools.services import PgBouncer, Services

ConfigMaker = Callable[..., dict[str, Any]]
PROBE = "farm-agent-probe"
_T = TypeVar("_T")


@pytest.fixture(scope="module")
def own_pgbouncer(services: Services) -> PgBouncer:
    """A pooler of this module's own: the one of the session outlives these tests."""
    return services.pgbouncer_with_limits("pgbouncer-cancels")


@pytest.fixture
async def admin(own_pgbouncer: PgBouncer) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(own_pgbouncer.postgres.dsn)
    yield connection
    await connection.close()


async def test_stopping_while_probes_wait_on_a_lock_cancels_their_queries_and_spares_pgbouncer(
    make_config: ConfigMaker,
    start_agent: Callable[..., AgentProcess],
    own_pgbouncer: PgBouncer,
    admin: asyncpg.Connection,
    test_id: str,
) -> None:
    config = make_config(
        pooler_dsn=with_secret(own_pgbouncer.dsn), probes={"interval_s": 1, "timeout_s": 30}
    )
    queue = config["backend"]["queue"]
    agent = start_agent(config)
    assert agent.route() == "pooler"

    async with admin.transaction():
        # Every probe that counts the queue now waits, as behind a long migration.
        await admin.execute(f'LOCK TABLE pgmq."q_{queue}" IN ACCESS EXCLUSIVE MODE')
        await wait_until(lambda: _waiting(admin, PROBE), "a probe waiting on the lock")
        assert await asyncio.to_thread(agent.terminate) == 0
        # The lock is still held: only a cancel request that reached the server ends them.
        left = await _once_gone(lambda: _waiting(admin, "farm-agent%"))

    assert left == [], f"queries of the stopped agent still waiting on the server: {left}"
    await _answers(own_pgbouncer)


async def _waiting(admin: asyncpg.Connection, names: str) -> list[str]:
    """The connections named like `names` whose query waits for a lock."""
    rows = await admin.fetch(
        "SELECT application_name FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND application_name LIKE $1",
        names,
    )
    return [row["application_name"] for row in rows]


@pytest.mark.parametrize("through", ["pooler", "direct"])
async def test_a_close_cancelled_again_still_delivers_the_cancel_request(
    own_pgbouncer: PgBouncer, admin: asyncpg.Connection, test_id: str, through: str
) -> None:
    """A probe's query cancelled by a stop, then its close cancelled too (the stop's
    cancellation reaches the probe round again): the query still ends on the server."""
    dsn = own_pgbouncer.dsn if through == "pooler" else own_pgbouncer.postgres.dsn
    marker = f"{test_id}-{through}"
    connection = await asyncpg.connect(dsn, statement_cache_size=0)

    async def probe() -> None:
        try:
            await connection.fetchval(f"SELECT pg_sleep(60) /* {marker} */")
        finally:
            await close_quietly(connection)

    running = asyncio.create_task(probe())
    await wait_until(lambda: _running(admin, marker), "the query running")
    # Once, then twice more while it closes (a stop, then a timeout around the probe).
    for _ in range(3):
        running.cancel()
        for _ in range(3):
            await asyncio.sleep(0)
    with contextlib.suppress(asyncio.CancelledError):
        await running
    await finish_cancel_requests()

    left = await _once_gone(lambda: _running(admin, marker))
    assert left == 0, "the cancelled query still runs on the server"
    await _answers(own_pgbouncer)


async def _running(admin: asyncpg.Connection, marker: str) -> int:
    count: int = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()",
        f"%{marker}%",
    )
    return count


async def _once_gone(found: Callable[[], Awaitable[_T]], within_s: float = 5) -> _T:
    """What `found` finds once it finds nothing, or after `within_s`, what is left."""
    deadline = time.monotonic() + within_s
    left = await found()
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        left = await found()
    return left


async def _answers(pgbouncer: PgBouncer) -> None:
    """The pooler is still up: it takes a client and answers."""
    pooler = await asyncpg.connect(pgbouncer.dsn, timeout=5)
    try:
        assert await pooler.fetchval("SELECT 1") == 1
    finally:
        await pooler.close()
