"""The `farm-agent` commands: their arguments, their output and their exit codes.

`cli` parses and dispatches; `check`, `queue` and `tasks` show what the jobs
(`farm_agent.health`, `farm_agent.relay`, `farm_agent.tasks`) found or did.
"""
