"""The database as the project needs it: objects, the agent's role, migrations, the check.

`objects` defines what is kept (PGMQ, the queues, the `farm_resilience` schema),
`access` the role `farm_agent` and its rights, `migrations` the ordered changes that
become `supabase/migrations/*.sql` and `farm-agent sql`, and `prepare` what a job does
at each new connection: check that its part is there, and make it only if allowed.
"""

from farm_agent.schema.migrations import MIGRATIONS, migration_hint, script
from farm_agent.schema.objects import ProjectQueues, default_queues
from farm_agent.schema.prepare import Needs, SchemaMissingError, manages_schema, prepare

__all__ = [
    "MIGRATIONS",
    "Needs",
    "ProjectQueues",
    "SchemaMissingError",
    "default_queues",
    "manages_schema",
    "migration_hint",
    "prepare",
    "script",
]
