"""PostgreSQL's simple query protocol, just enough to read PgBouncer's admin console.

The admin console (`SHOW POOLS`, `SHOW CONFIG`) answers only simple queries, and
asyncpg returns no rows for those; this reads them, every value as text. It
connects with the TLS rules of every other database connection
(`farm_agent.database.choose_tls`) and logs in with trust, a password, md5 or
SCRAM-SHA-256. Errors never quote the DSN.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import ssl
import struct
from urllib.parse import unquote, urlsplit

from farm_agent.config import BackendConfig
from farm_agent.database import DatabaseTlsError, choose_tls, ssl_argument

PROTOCOL_VERSION = 196608  # 3.0
SSL_REQUEST = 80877103
Row = dict[str, str | None]


class ConsoleError(ConnectionError):
    """The server refused the login or the query; `sqlstate` says why, when it did."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


async def simple_query(
    dsn: str, backend: BackendConfig, queries: tuple[str, ...], timeout_s: float
) -> list[list[Row]]:
    """The rows of each query, run one after the other on one fresh connection."""
    parts = urlsplit(dsn)
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 5432)
        try:
            session = _Session(reader, writer)
            await session.secure(dsn, backend, parts.hostname or "")
            user = unquote(parts.username or "")
            await session.log_in(user, unquote(parts.password or ""), parts.path.lstrip("/"))
            return [await session.query(sql) for sql in queries]
        finally:
            writer.close()


class _Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def secure(self, dsn: str, backend: BackendConfig, host: str) -> None:
        """TLS as `backend.tls` and the DSN ask; a required TLS never falls back to plaintext."""
        choice = choose_tls(dsn, backend.tls)
        wanted = ssl_argument(choice)
        if wanted is False:
            return
        self.writer.write(struct.pack("!ii", 8, SSL_REQUEST))
        answer = await self.reader.readexactly(1)
        if answer != b"S":
            if isinstance(wanted, ssl.SSLContext):
                raise DatabaseTlsError(
                    f"server does not offer TLS, which sslmode {choice.mode} requires"
                )
            return
        context = wanted if isinstance(wanted, ssl.SSLContext) else _unverified()
        await self.writer.start_tls(context, server_hostname=host)

    async def log_in(self, user: str, password: str, database: str) -> None:
        params = {"user": user, "database": database, "application_name": "farm-agent-probe"}
        body = b"".join(f"{key}\0{value}\0".encode() for key, value in params.items()) + b"\0"
        self.writer.write(struct.pack("!ii", 8 + len(body), PROTOCOL_VERSION) + body)
        scram: _Scram | None = None
        while True:
            kind, payload = await self._receive()
            if kind == b"R":
                scram = self._authenticate(payload, user, password, scram)
            elif kind == b"Z":
                return

    def _authenticate(
        self, payload: bytes, user: str, password: str, scram: _Scram | None
    ) -> _Scram | None:
        (code,) = struct.unpack("!i", payload[:4])
        if code == 3:  # cleartext
            self._send(b"p", password.encode() + b"\0")
        elif code == 5:  # md5 with a salt
            inner = hashlib.md5((password + user).encode()).hexdigest().encode()  # noqa: S324
            outer = hashlib.md5(inner + payload[4:8]).hexdigest()  # noqa: S324
            self._send(b"p", f"md5{outer}".encode() + b"\0")
        elif code == 10:  # SASL: the mechanisms offered
            if b"SCRAM-SHA-256\0" not in payload[4:]:
                raise ConsoleError("the server offers no SASL mechanism this client speaks")
            scram = _Scram(password)
            first = scram.client_first()
            self._send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)
        elif code == 11 and scram is not None:
            self._send(b"p", scram.client_final(payload[4:]))
        elif code == 12 and scram is not None:
            scram.verify_server(payload[4:])
        elif code != 0:
            raise ConsoleError(f"authentication method {code} is not supported")
        return scram

    async def query(self, sql: str) -> list[Row]:
        self._send(b"Q", sql.encode() + b"\0")
        columns: list[str] = []
        rows: list[Row] = []
        error: ConsoleError | None = None
        while True:
            kind, payload = await self._receive(raise_errors=False)
            if kind == b"T":
                columns = _column_names(payload)
            elif kind == b"D":
                rows.append(dict(zip(columns, _values(payload), strict=True)))
            elif kind == b"E":
                error = _error(payload)
            elif kind == b"Z":
                if error is not None:
                    raise error
                return rows

    def _send(self, kind: bytes, body: bytes) -> None:
        self.writer.write(kind + struct.pack("!i", len(body) + 4) + body)

    async def _receive(self, *, raise_errors: bool = True) -> tuple[bytes, bytes]:
        header = await self.reader.readexactly(5)
        kind, length = header[:1], struct.unpack("!i", header[1:])[0]
        payload = await self.reader.readexactly(length - 4)
        if kind == b"E" and raise_errors:
            raise _error(payload)
        return kind, payload


class _Scram:
    """SCRAM-SHA-256 (RFC 7677) as PostgreSQL uses it: the user name comes from the startup."""

    def __init__(self, password: str) -> None:
        self.password = password.encode()
        self.nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        self.first_bare = f"n=,r={self.nonce}"
        self.expected_signature = b""

    def client_first(self) -> bytes:
        return f"n,,{self.first_bare}".encode()

    def client_final(self, server_first: bytes) -> bytes:
        fields = dict(part.split("=", 1) for part in server_first.decode().split(","))
        if not fields["r"].startswith(self.nonce):
            raise ConsoleError("the server's SCRAM nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac(
            "sha256", self.password, base64.b64decode(fields["s"]), int(fields["i"])
        )
        client_key = _hmac(salted, b"Client Key")
        without_proof = f"c={base64.b64encode(b'n,,').decode()},r={fields['r']}"
        message = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        signature = _hmac(hashlib.sha256(client_key).digest(), message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self.expected_signature = _hmac(_hmac(salted, b"Server Key"), message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify_server(self, server_final: bytes) -> None:
        fields = dict(part.split("=", 1) for part in server_final.decode().split(","))
        if not hmac.compare_digest(base64.b64decode(fields.get("v", "")), self.expected_signature):
            raise ConsoleError("the server's SCRAM signature is wrong")


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _unverified() -> ssl.SSLContext:
    """For `prefer`: encrypted if the server offers it, as libpq does, not verified."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _column_names(payload: bytes) -> list[str]:
    (count,) = struct.unpack("!h", payload[:2])
    names, offset = [], 2
    for _ in range(count):
        end = payload.index(b"\0", offset)
        names.append(payload[offset:end].decode())
        offset = end + 1 + 18  # table oid, column, type oid, size, modifier, format
    return names


def _values(payload: bytes) -> list[str | None]:
    (count,) = struct.unpack("!h", payload[:2])
    values: list[str | None] = []
    offset = 2
    for _ in range(count):
        (length,) = struct.unpack("!i", payload[offset : offset + 4])
        offset += 4
        if length < 0:
            values.append(None)
            continue
        values.append(payload[offset : offset + length].decode(errors="replace"))
        offset += length
    return values


def _error(payload: bytes) -> ConsoleError:
    fields = {
        part[:1].decode(): part[1:].decode(errors="replace")
        for part in payload.split(b"\0")
        if part
    }
    return ConsoleError(fields.get("M", "the server refused"), fields.get("C"))
