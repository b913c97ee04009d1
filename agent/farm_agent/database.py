"""Database connections: the routes, the one place that decides TLS and opens every connection.

A route is the pooler (Supavisor, PgBouncer) or the direct connection; the relay, the
worker, the probes and the commands prefer them in that order. They all connect
through `connect()`, so they all encrypt and verify alike. The TLS mode of a route
is, in this order: the DSN's own `sslmode`; `backend.tls.mode`; else for a loopback host `prefer`
(TLS if offered, as libpq does), and for any other host `verify-full` with
`backend.tls.ca_file`, or `require` (encrypted, server not verified) without it.
A non-loopback host never falls back to plaintext unless its DSN says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import ssl
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import asyncpg

from farm_agent.config import SSL_MODES, BackendConfig, BackendTlsConfig
from farm_agent.failures import DATABASE_ERRORS

VERIFIED = frozenset({"verify-ca", "verify-full"})
# Modes that try TLS but accept a server that does not offer it.
ADVISORY = frozenset({"allow", "prefer"})
LOOPBACK_DEFAULT = "default for a loopback host"
REMOTE_DEFAULT = "default for a remote host"
# How long a close waits for the server's goodbye and for a cancel request in flight.
CLOSE_TIMEOUT_S = 1.0


class Route(StrEnum):
    """A way to the database; `none` while no route works."""

    POOLER = "pooler"
    DIRECT = "direct"
    NONE = "none"


def routes(backend: BackendConfig) -> dict[Route, str]:
    """The configured routes and their DSNs, pooler first (the preferred one)."""
    found = {Route.POOLER: backend.pooler_dsn, Route.DIRECT: backend.direct_dsn}
    return {name: dsn for name, dsn in found.items() if dsn}


class DatabaseTlsError(ConnectionError):
    """TLS to the database failed: the server's certificate, or no TLS offered at all."""


@dataclass(frozen=True, slots=True)
class TlsChoice:
    """How one DSN's connections are encrypted, and why that way."""

    mode: str
    ca_file: str | None
    source: str
    loopback: bool

    @property
    def verified(self) -> bool:
        return self.mode in VERIFIED

    @property
    def by_default(self) -> bool:
        """Nobody asked for this mode: the host's kind chose it."""
        return self.source in (LOOPBACK_DEFAULT, REMOTE_DEFAULT)

    @property
    def encrypted(self) -> bool:
        """TLS or no connection at all."""
        return self.mode not in ADVISORY and self.mode != "disable"


def is_loopback(host: str) -> bool:
    """A host on this machine: `localhost`, 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def choose_tls(dsn: str, tls: BackendTlsConfig) -> TlsChoice:
    """The TLS mode and CA file for connections to `dsn`, and which setting chose them."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    loopback = is_loopback(parts.hostname or "")
    dsn_mode = query.get("sslmode", [None])[-1]
    ca_file = query.get("sslrootcert", [None])[-1] or tls.ca_file
    if dsn_mode is not None:
        return TlsChoice(dsn_mode, ca_file, "sslmode in the DSN", loopback)
    if tls.mode is not None:
        return TlsChoice(tls.mode, ca_file, "backend.tls.mode", loopback)
    if loopback:
        return TlsChoice("prefer", ca_file, LOOPBACK_DEFAULT, loopback)
    if ca_file is not None:
        return TlsChoice("verify-full", ca_file, "backend.tls.ca_file", loopback)
    return TlsChoice("require", None, REMOTE_DEFAULT, loopback)


def tls_warning(route: str, dsn: str, tls: BackendTlsConfig) -> str | None:
    """A sentence when a route's server is not verified and that matters, else None.

    It matters for a remote host, and wherever TLS was asked for explicitly:
    there the operator expects the server to be the one they meant.
    """
    choice = choose_tls(dsn, tls)
    if choice.verified or (choice.loopback and choice.by_default):
        return None
    why = f"sslmode {choice.mode} from {choice.source}"
    if not choice.encrypted:
        return (
            f"{route} connection may be plaintext ({why}); set backend.tls.ca_file"
            " and use verify-full"
        )
    if choice.ca_file is None:
        return (
            f"{route} server not verified ({why}): set backend.tls.ca_file to the"
            " provider's CA (Supabase: prod-ca-2021.crt)"
        )
    return f"{route} server not verified ({why}): backend.tls.ca_file needs verify-full"


def ssl_argument(choice: TlsChoice) -> ssl.SSLContext | Literal["allow", "prefer", False]:
    """What asyncpg's `ssl` takes for this choice; an SSLContext never falls back to plaintext."""
    if choice.mode not in SSL_MODES:
        raise DatabaseTlsError(f"unknown sslmode {choice.mode!r} in the DSN")
    if choice.mode == "disable":
        return False
    if choice.mode == "allow":
        return "allow"
    if choice.mode == "prefer":
        return "prefer"
    return _context(choice.mode, choice.ca_file)


@functools.lru_cache(maxsize=8)
def _context(mode: str, ca_file: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if mode == "require":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context.check_hostname = mode == "verify-full"
    context.verify_mode = ssl.CERT_REQUIRED
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    else:
        context.load_default_certs()
    return context


async def connect(
    dsn: str,
    backend: BackendConfig,
    *,
    timeout_s: float,
    command_timeout_s: float | None,
    statement_cache_size: int,
    application_name: str,
) -> asyncpg.Connection:
    """A connection to `dsn` with the backend's TLS settings; TLS failures say what failed."""
    choice = choose_tls(dsn, backend.tls)
    try:
        return await asyncpg.connect(
            dsn,
            ssl=ssl_argument(choice),
            timeout=timeout_s,
            command_timeout=command_timeout_s,
            statement_cache_size=statement_cache_size,
            server_settings={"application_name": application_name},
        )
    except ssl.SSLCertVerificationError as err:
        where = choice.ca_file or "the system's CA store"
        raise DatabaseTlsError(
            f"server certificate not trusted ({err.verify_message}); checked against {where}"
        ) from err
    except ssl.SSLError as err:
        raise DatabaseTlsError(f"TLS failed ({err.reason or err})") from err
    except ConnectionError as err:
        if "rejected SSL upgrade" not in str(err):
            raise
        raise DatabaseTlsError(
            f"server does not offer TLS, which sslmode {choice.mode} ({choice.source}) requires"
        ) from err


async def connect_apart(
    dsn: str, backend: BackendConfig, timeout_s: float, application_name: str
) -> asyncpg.Connection:
    """A fresh connection apart from the relay's; no statement cache, so poolers are fine."""
    return await connect(
        dsn,
        backend,
        timeout_s=timeout_s,
        command_timeout_s=timeout_s,
        statement_cache_size=0,
        application_name=application_name,
    )


async def connect_any(
    backend: BackendConfig,
    timeout_s: float,
    prefer: Route | None = None,
    application_name: str = "farm-agent-probe",
) -> tuple[Route, asyncpg.Connection]:
    """A connection on the preferred route, else on the first configured one that answers."""
    configured = routes(backend)
    order = sorted(configured, key=lambda name: name != prefer)
    error: BaseException | None = None
    for name in order:
        try:
            return name, await connect_apart(configured[name], backend, timeout_s, application_name)
        except DATABASE_ERRORS as err:
            error = err
    assert error is not None
    raise error


async def close_quietly(connection: asyncpg.Connection) -> None:
    """Say goodbye to the server (no "unexpected EOF" in its log), or just drop the socket.

    Never cut short by a cancellation (a stop, a probe's timeout): a query cancelled on
    this connection has asyncpg sending a cancel request on a socket of its own, which
    the close waits for and an interrupted close drops half-sent (see
    `finish_cancel_requests`). A cancellation that comes meanwhile is raised after.
    """
    closing = asyncio.ensure_future(_close(connection))
    cancelled: asyncio.CancelledError | None = None
    while not closing.done():  # bounded: _close gives up after CLOSE_TIMEOUT_S
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError as err:
            cancelled = cancelled or err
    if cancelled is not None:
        raise cancelled


async def _close(connection: asyncpg.Connection) -> None:
    try:
        # asyncpg's close first waits for a cancel request in flight, within this timeout.
        await connection.close(timeout=CLOSE_TIMEOUT_S)
    except Exception:
        with contextlib.suppress(Exception):
            connection.terminate()


async def finish_cancel_requests(timeout_s: float = CLOSE_TIMEOUT_S) -> None:
    """Let the cancel requests asyncpg still has in flight end, before the loop closes.

    A query cancelled (a stop, a timeout) makes asyncpg send a cancel request on a
    connection of its own and wait for the server to hang up; a daemon that exits
    meanwhile drops it half-sent: the query keeps running on the server, and PgBouncer
    1.18 (Debian 12's) dies of it ("disconnect_client(): bad client state: 0",
    pgbouncer#801), taking the pooler down for every client of the farm.
    """
    current = asyncio.current_task()
    in_flight = {
        task
        for task in asyncio.all_tasks()
        if task is not current
        and getattr(task.get_coro(), "__qualname__", "") == "Connection._cancel"
    }
    if in_flight:
        await asyncio.wait(in_flight, timeout=timeout_s)


@dataclass(frozen=True, slots=True)
class Answer:
    """How long a route took to connect and to answer `SELECT 1`, in milliseconds."""

    connect_ms: float
    query_ms: float


async def select_one(
    dsn: str, backend: BackendConfig, timeout_s: float, application_name: str
) -> Answer:
    """`SELECT 1` on a fresh connection of its own: is the route there, and how fast.

    Raises what connecting or querying raised; the health probe and the relay's
    failback both ask the question this way.
    """
    started = time.perf_counter()
    connection = await connect_apart(dsn, backend, timeout_s, application_name)
    connected = time.perf_counter()
    try:
        await connection.fetchval("SELECT 1")
        answered = time.perf_counter()
    finally:
        await close_quietly(connection)
    return Answer((connected - started) * 1000, (answered - connected) * 1000)
