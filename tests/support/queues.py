"""The queues as a consumer sees them, for the tests: read, fill, and what must hold of them."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg


async def queue_messages(dsn: str, queue: str) -> list[dict[str, Any]]:
    """Every envelope in a PGMQ queue, oldest first (empty if the queue does not exist yet)."""
    connection = await asyncpg.connect(dsn)
    try:
        exists = await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", f"pgmq.q_{queue}")
        if not exists:
            return []
        rows = await connection.fetch(f"SELECT message FROM pgmq.q_{queue} ORDER BY msg_id")
    finally:
        await connection.close()
    return [json.loads(row["message"]) for row in rows]


async def wait_for_messages(
    dsn: str, queue: str, count: int, timeout: float = 60
) -> list[dict[str, Any]]:
    """Poll the queue until it holds at least `count` envelopes (or time runs out); return them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await queue_length(dsn, queue) >= count:
            break
        await asyncio.sleep(0.2)
    return await queue_messages(dsn, queue)


async def queue_length(dsn: str, queue: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        if not await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", f"pgmq.q_{queue}"):
            return 0
        return int(await connection.fetchval(f"SELECT count(*) FROM pgmq.q_{queue}"))
    finally:
        await connection.close()


async def create_queues(dsn: str, *queues: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        for queue in queues:
            await connection.execute("SELECT pgmq.create($1::text)", queue)
    finally:
        await connection.close()


async def archive_finished(
    dsn: str, queue: str, seconds: list[float], hours_ago: float = 0
) -> None:
    """Rows in the queue's archive as if a consumer finished tasks taking `seconds` each."""
    connection = await asyncpg.connect(dsn)
    try:
        table = f'pgmq."a_{queue}"'
        first = await connection.fetchval(f"SELECT coalesce(max(msg_id), 0) + 1 FROM {table}")
        await connection.executemany(
            f"""
            INSERT INTO {table} (msg_id, enqueued_at, archived_at, vt, message)
            VALUES ($1, now() - make_interval(hours => $3) - make_interval(secs => $2),
                    now() - make_interval(hours => $3), now(), '{{}}'::jsonb)
            """,
            [
                (first + index, float(taken), float(hours_ago))
                for index, taken in enumerate(seconds)
            ],
        )
    finally:
        await connection.close()


async def query_rows(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def queue_rows(dsn: str, queue: str, table: str = "q") -> list[dict[str, Any]]:
    """A queue's rows (or its archive's, table="a"), message parsed, oldest first."""
    rows = await query_rows(dsn, f'SELECT * FROM pgmq."{table}_{queue}" ORDER BY msg_id')
    return [{**dict(row), "message": json.loads(row["message"])} for row in rows]


async def send(dsn: str, queue: str, *messages: Any) -> None:
    """Put messages on a queue (created if missing) as another producer would, as they are."""
    await send_texts(dsn, queue, *(json.dumps(message) for message in messages))


async def send_texts(dsn: str, queue: str, *texts: str) -> None:
    """Put messages given as JSON text on a queue, digits and all."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SELECT pgmq.create($1::text)", queue)
        for text in texts:
            await connection.execute("SELECT pgmq.send($1::text, $2::text::jsonb)", queue, text)
    finally:
        await connection.close()


def assert_relayed_in_received_order(messages: list[dict[str, Any]]) -> None:
    """The queue holds the readings in the order the agent received them (its spool sequence)."""
    received = [int(message["key"].rsplit(":", 1)[1]) for message in messages]
    inverted = next((i for i in range(1, len(received)) if received[i] < received[i - 1]), None)
    assert inverted is None, (
        f"relayed out of received order at {inverted}: {messages[inverted - 1 : inverted + 1]}"
    )


def assert_exactly_once(
    sent: list[tuple[str, str]], messages: list[dict[str, Any]], *, publish_order: bool = True
) -> None:
    """Every reading once, none twice, and each topic's readings in the order they were sent.

    `publish_order=False` skips the last check, for runs where the broker itself may
    deliver a publisher's readings out of order (a broker restart).
    """
    sent = [(topic, _canonical(json.loads(payload))) for topic, payload in sent]
    received = [(m["topic"], _canonical(m["payload"])) for m in messages]
    keys = [m["key"] for m in messages]
    assert len(keys) == len(set(keys)), "a key reached the queue twice"
    sent_set, received_set = set(sent), set(received)
    missing = sent_set - received_set
    assert not missing, f"{len(missing)} readings lost, e.g. {sorted(missing)[:3]}"
    assert len(received) == len(sent), f"{len(received) - len(sent)} duplicates"
    if not publish_order:
        return
    for topic in {topic for topic, _ in sent}:
        got = [p for t, p in received if t == topic]
        expected = [p for t, p in sent if t == topic]
        if got != expected:
            first = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
            in_topic = [m for m in messages if m["topic"] == topic]
            context = [
                (m["key"], m["received_at"], m["payload"])
                for m in in_topic[max(0, first - 3) : first + 4]
            ]
            raise AssertionError(f"readings of {topic} out of order at {first}: {context}")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
