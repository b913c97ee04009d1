"""The end-to-end runs reuse the agent's fixtures (config, processes, secret scan)."""

from tests.agent.conftest import (  # noqa: F401 - fixtures
    make_config,
    no_secret_ever_shown,
    services_serving,
    start_agent,
    test_id,
)
