"""`farm-agent sql`: the project's migrations as SQL, for the configured queue names.

For users without the Supabase CLI, or with queue names other than the defaults:
paste the output into the SQL editor, or pipe it to `psql`, as the database owner.
"""

from __future__ import annotations

import sys

from farm_agent.config import ConfigError
from farm_agent.config_file import load_config
from farm_agent.schema import ProjectQueues, script

EXIT_OK = 0
EXIT_BAD_CONFIG = 2


def print_sql(config_path: str | None) -> int:
    """Print every migration for the config's queues (the defaults without a config)."""
    queues = None
    if config_path is not None:
        try:
            queues = ProjectQueues.of(load_config(config_path))
        except ConfigError as err:
            print(f"farm-agent: config error: {err}", file=sys.stderr)
            return EXIT_BAD_CONFIG
    sys.stdout.write(script(queues))
    return EXIT_OK
