"""What went wrong, in one place: which failures are the route's, the clock's, or a bug.

The relay's router, the task worker and the probes all meet the same errors; they
classify and describe them here, so a failure counts alike wherever it shows up.
"""

from __future__ import annotations

import sys

import asyncpg

# What a broken route or a refusing server raises; anything else is a bug and propagates.
DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def probe_errors() -> tuple[type[BaseException], ...]:
    """Failures a probe is there to find; anything else is a bug worth a traceback.

    aiohttp's errors among them only once aiohttp is loaded (by an HTTP probe): an
    agent without HTTP probes never imports it, and then none can be raised.
    """
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is None:
        return DATABASE_ERRORS
    return (*DATABASE_ERRORS, aiohttp.ClientError)


# SQLSTATE classes that mean "this connection or server is not usable now".
_CONNECTION_CLASSES = ("08", "53", "57")
# Severities with which a server (or pooler) ends the session.
_SESSION_ENDING = ("FATAL", "PANIC")


def is_connection_failure(error: BaseException) -> bool:
    """A statement failed for the route's sake (retry elsewhere), not the data's."""
    if isinstance(error, OSError | TimeoutError | asyncpg.InterfaceError):
        return True
    if isinstance(error, asyncpg.PostgresError):
        severity = str(getattr(error, "severity_en", None) or getattr(error, "severity", ""))
        return (
            str(error.sqlstate or "").startswith(_CONNECTION_CLASSES)
            or severity.upper() in _SESSION_ENDING
        )
    return False


def is_timeout(error: BaseException) -> bool:
    """The statement ran out of time (client side, or cancelled by the server)."""
    return isinstance(error, TimeoutError | asyncpg.QueryCanceledError)


def describe_failure(error: BaseException) -> str:
    """A short reason for logs: error class and message (asyncpg keeps passwords out)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{error.__class__.__name__}: {text}" if text else error.__class__.__name__
