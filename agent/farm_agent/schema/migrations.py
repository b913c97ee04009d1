"""The project's database changes as Supabase migrations, one per change, in order.

Each migration is rendered for a set of queue names: for the default names it is the
file `supabase/migrations/<version>_<name>.sql` (written by `python -m
tools.write_migrations`; a test fails when a file and its rendering differ), for a
configuration's names it is what `farm-agent sql --config PATH` prints. A later change
is a new entry here (and a new file), never an edit of an applied one. An agent allowed
to manage its schema runs the `objects` part of every entry itself; the `access` part
(the role and its grants) needs a role administrator and is left to the migration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from farm_agent.schema.access import access_sql
from farm_agent.schema.objects import ProjectQueues, default_queues, objects_sql

MIGRATIONS_DIR = "supabase/migrations"

Render = Callable[[ProjectQueues], str]


@dataclass(frozen=True, slots=True)
class Migration:
    """One change: what it makes (`objects`) and who may use it (`access`)."""

    version: str
    name: str
    objects: Render
    access: Render

    @property
    def file_name(self) -> str:
        return f"{self.version}_{self.name}.sql"

    @property
    def path(self) -> str:
        """Where the file is, from the repository's root."""
        return f"{MIGRATIONS_DIR}/{self.file_name}"


MIGRATIONS = (Migration("20261202000000", "farm_resilience", objects_sql, access_sql),)

HEADER = """\
-- Farm Resilience: {name} ({file_name}).
-- Generated from agent/farm_agent/schema by `python -m tools.write_migrations`: change it
-- there; tests/agent/test_supabase_setup.py fails when the two differ. Idempotent:
-- applying it again is harmless. For other queue names than these, apply the SQL of
-- `farm-agent sql --config PATH` instead:
{queues}
"""


def migration_text(migration: Migration, queues: ProjectQueues) -> str:
    """One migration as SQL for `queues`, with the header that says what it is."""
    header = HEADER.format(
        name=migration.name,
        file_name=migration.file_name,
        queues="".join(f"--   {queue}\n" for queue in queues.queues).rstrip("\n"),
    )
    return header + migration.objects(queues) + migration.access(queues)


def script(queues: ProjectQueues | None = None) -> str:
    """Every migration in order, for `queues` (default: the default names)."""
    chosen = queues or default_queues()
    return "\n".join(migration_text(migration, chosen) for migration in MIGRATIONS)


def managed_sql(queues: ProjectQueues) -> str:
    """What an agent with `backend.manage_schema` runs: every migration's objects."""
    return "".join(migration.objects(queues) for migration in MIGRATIONS)


# For a line that must stay short (a health problem): where to look.
SHORT_HINT = f"apply {MIGRATIONS_DIR} or `farm-agent sql`"


def migration_hint() -> str:
    """How a user puts in what is missing: the files, or `farm-agent sql`."""
    files = ", ".join(migration.path for migration in MIGRATIONS)
    return (
        f"apply {files} (supabase db push, or the SQL editor) or the SQL printed by "
        "`farm-agent sql --config PATH`, as the database owner"
    )
