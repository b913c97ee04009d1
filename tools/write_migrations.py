"""Write supabase/migrations/*.sql from farm_agent.schema, for the default queue names.

Run after changing the schema (`python -m tools.write_migrations`); a new change is a
new entry in farm_agent.schema.migrations.MIGRATIONS, so applied files stay as they were.
tests/agent/test_supabase_setup.py fails while a file differs from its rendering.
"""

from __future__ import annotations

from pathlib import Path

from farm_agent.schema import MIGRATIONS, default_queues
from farm_agent.schema.migrations import migration_text

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    queues = default_queues()
    for migration in MIGRATIONS:
        path = REPO / migration.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(migration_text(migration, queues))
        print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
