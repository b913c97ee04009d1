"""Shared fixtures: the throwaway real services every part of the suite runs against."""

from __future__ import annotations

import signal
from collections.abc import Iterator

# Imported here, near the bottom of the stack: Python 3.11.7 can fail to compile
# hypothesis when pytest first imports it deep inside its session-finish hooks.
import hypothesis  # noqa: F401
import pytest

# pytest-homeassistant-custom-component puts its own `custom_components` package
# on the path; importing ours first makes the loader find farm_resilience.
import custom_components  # noqa: F401
from tools.services import Mosquitto, PgBouncer, Postgres, Services

# A SIGTERMed test run unwinds like Ctrl-C, so the fixtures still stop their services.
signal.signal(signal.SIGTERM, signal.default_int_handler)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """One folder of throwaway services for the session; nothing is left behind."""
    running = Services()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="session")
def postgres(services: Services) -> Postgres:
    """PostgreSQL 15 with PGMQ, shared by the session. Tests that stop it must start it again."""
    return services.postgres


@pytest.fixture(scope="session")
def pgbouncer(services: Services) -> PgBouncer:
    """PgBouncer in transaction mode in front of `postgres`: the stand-in for Supavisor."""
    return services.pgbouncer


@pytest.fixture(scope="session")
def mosquitto(services: Services) -> Mosquitto:
    """A Mosquitto broker shared by the session."""
    return services.mosquitto()
