"""The end-to-end runs use the shared fixtures of tests/conftest.py (config, processes)."""

import pytest


@pytest.fixture(autouse=True)
def services_serving(serving: None, no_secret_ever_shown: None) -> None:
    """Every end-to-end run: the services serving, and the session's secret scan."""
