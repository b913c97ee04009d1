"""`farm-agent`: the commands, their arguments and exit codes; the work lives elsewhere."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from farm_agent import __version__
from farm_agent.commands.tasks import add_task_commands, run_task_command
from farm_agent.config import AgentConfig, ConfigError
from farm_agent.config_reader import ConfigReaderError, read_config
from farm_agent.logs import configure_logging, quiet_logging

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_CONFIG = 2
# The long-running commands: they read their config in a child process (config_reader).
DAEMONS = frozenset({"run", "work"})

_LOGGER = logging.getLogger("farm_agent")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="farm-agent",
        description=(
            "Relay farm MQTT readings into a Supabase Queue (PGMQ) without losing or "
            "duplicating any, and report backend health to Home Assistant."
        ),
    )
    parser.add_argument("--version", action="version", version=f"farm-agent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--config",
            metavar="PATH",
            default=os.environ.get("FARM_AGENT_CONFIG"),
            help="YAML config file (default: $FARM_AGENT_CONFIG)",
        )
        return sub

    with_config(
        commands.add_parser(
            "run",
            help="relay until SIGTERM/SIGINT, then drain gracefully",
            description="Relay until SIGTERM or SIGINT; then stop acking, commit, and exit.",
        )
    )
    with_config(
        commands.add_parser(
            "validate",
            help="check a config file; exit 0, or 2 naming the offending key",
            description="Check a config file: exit 0 if valid, 2 with the offending key if not.",
        )
    )
    check = with_config(
        commands.add_parser(
            "check",
            help="run every probe once; exit 0 ok, 1 degraded or down, 2 bad config",
            description=(
                "Run every probe once (database routes, queue, tasks, HTTP endpoints, MQTT) "
                "without starting the relay; print a table, or the health JSON with --json."
            ),
        )
    )
    check.add_argument("--json", action="store_true", help="print the health JSON")
    report = with_config(
        commands.add_parser(
            "report",
            help="write the weekly review: one self-contained HTML page with plots",
            description=(
                "Write the review of the last days (objectives, incidents, probes, relay, "
                "tasks) from the agent's SLO history and the task figures: one HTML page."
            ),
        )
    )
    report.add_argument(
        "--days", type=_days, default=7, metavar="N", help="how many days, 1-35 (default 7)"
    )
    report.add_argument("--out", type=Path, required=True, metavar="FILE.html", help="the page")
    with_config(
        commands.add_parser(
            "sql",
            help="print the SQL that sets up the database (the migrations) for the config",
            description=(
                "Print the migrations of supabase/migrations as SQL: for the queue names of "
                "--config, or the default names without one. Apply it as the database owner."
            ),
        )
    )
    _add_queue_commands(commands, with_config)
    add_task_commands(commands, with_config)
    _add_loadtest_command(commands, with_config)
    return parser


def _add_loadtest_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    loadtest = with_config(
        commands.add_parser(
            "loadtest",
            help="many clients against the pooler and the direct route; exit 1 if a route failed",
            description=(
                "Open N concurrent clients against each database route in turn and report "
                "connect time, query p50/p95/p99, errors (pool exhaustion named), throughput "
                "and the pooler's speed-up over direct. Read-only; asks before a remote host."
            ),
        )
    )
    loadtest.add_argument(
        "--clients", type=int, default=100, metavar="N", help="concurrent clients (1-1000, 100)"
    )
    loadtest.add_argument(
        "--duration", type=float, default=60.0, metavar="S", help="seconds per route (<=600, 60)"
    )
    loadtest.add_argument(
        "--route", choices=("pooler", "direct", "both"), default="both", help="(default both)"
    )
    loadtest.add_argument(
        "--query", metavar="SQL", help="one read-only statement (default SELECT 1)"
    )
    loadtest.add_argument("--json", action="store_true", help="print the figures as JSON")
    loadtest.add_argument(
        "--yes", action="store_true", help="do not ask before loading a remote database"
    )


def _add_queue_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    queue = commands.add_parser(
        "queue",
        help="look into the queue and the dead-letter queue; requeue or purge dead letters",
        description="Look into the queue and its dead letters; put them back or delete them.",
    )
    actions = queue.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(
        parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
    ) -> argparse.ArgumentParser:
        sub = with_config(parent.add_parser(name, help=text, description=text))
        sub.add_argument("--json", action="store_true", help="print JSON for scripts")
        return sub

    action(actions, "stats", "depth and age of both queues, and the last hour of tasks")
    peek = action(actions, "peek", "show the oldest messages of the queue, leaving them there")
    peek.add_argument(
        "--limit", type=_positive, default=10, metavar="N", help="how many (default 10)"
    )
    dlq = actions.add_parser(
        "dlq",
        help="a dead-letter queue (the relay's, or with --queue tasks the tasks'): "
        "list, requeue, purge",
    )
    dlq_actions = dlq.add_subparsers(dest="dlq_action", required=True, metavar="ACTION")

    def dlq_action(name: str, text: str) -> argparse.ArgumentParser:
        sub = action(dlq_actions, name, text)
        sub.add_argument(
            "--queue",
            metavar="NAME",
            help="which dead letters: the relay's (default; 'relay' or its queue's name) "
            "or the tasks' ('tasks', tasks.queue or tasks.dead_letter_queue)",
        )
        sub.add_argument(
            "--type",
            dest="task_type",
            metavar="T",
            help="only task dead letters of this type (with --queue tasks; "
            "'(invalid)' for those that were no task)",
        )
        return sub

    listing = dlq_action("list", "show the oldest dead letters with their reasons")
    listing.add_argument(
        "--limit", type=_positive, default=10, metavar="N", help="how many (default 10)"
    )
    requeue = dlq_action(
        "requeue",
        "move dead letters back to their queue, envelope kept, `requeued` counted up "
        "(a task to its priority's queue, attempts afresh)",
    )
    requeue.add_argument("--limit", type=_positive, metavar="N", help="only the oldest N")
    requeue.add_argument(
        "--batch-size",
        type=_positive,
        metavar="N",
        help="dead letters per transaction (default 500); progress goes to stderr",
    )
    requeue.add_argument(
        "--id",
        type=int,
        action="append",
        default=[],
        dest="ids",
        metavar="MSG_ID",
        help="only this message (repeatable)",
    )
    purge = dlq_action("purge", "delete every dead letter, or every one of --type (asks first)")
    purge.add_argument("--limit", type=_positive, metavar="N", help="only the oldest N")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _days(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 35:
        raise argparse.ArgumentTypeError("must be 1-35: the history keeps 35 days")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sql":  # the one command that works without a config, too
        from farm_agent.commands.sql import print_sql  # noqa: PLC0415 - keeps `validate` light

        return print_sql(args.config)
    return _configured(args)


def _configured(args: argparse.Namespace) -> int:
    """Run a command that needs the config: load it, then dispatch."""
    try:
        config = _load(args)
    except ConfigError as err:
        print(f"farm-agent: config error: {err}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except ConfigReaderError as err:
        print(f"farm-agent: {err}", file=sys.stderr)
        return EXIT_FAILURE
    if args.command == "validate":
        print(f"{args.config}: valid (agent_id {config.agent_id})")
        return EXIT_OK
    commands: dict[str, Callable[[AgentConfig, argparse.Namespace], int]] = {
        "check": lambda config, args: check(config, args.json),
        "queue": queue,
        "task": run_task_command,
        "work": run_task_command,
        "loadtest": loadtest,
        "report": lambda config, args: report(config, args.days, args.out),
    }
    return commands.get(args.command, _relay)(config, args)


def _load(args: argparse.Namespace) -> AgentConfig:
    if args.command in DAEMONS:
        return read_config(args.config)
    from farm_agent.config_file import load_config  # noqa: PLC0415 - the daemons never need it

    return load_config(args.config)


def _relay(config: AgentConfig, _: argparse.Namespace) -> int:
    return run(config)


def check(config: AgentConfig, as_json: bool) -> int:
    from farm_agent.commands.check import run_check  # noqa: PLC0415 - keeps `validate` light

    quiet_logging(config)
    return run_check(config, as_json)


def report(config: AgentConfig, days: int, out: Path) -> int:
    from farm_agent.commands.report import run_report  # noqa: PLC0415 - keeps `validate` light

    quiet_logging(config)
    return run_report(config, days, out)


def queue(config: AgentConfig, args: argparse.Namespace) -> int:
    from farm_agent.commands.queue import (  # noqa: PLC0415 - keeps `validate` light
        QueueRequest,
        run_queue_command,
    )
    from farm_agent.relay.queues import REQUEUE_BATCH  # noqa: PLC0415

    quiet_logging(config)
    action = args.action if args.action != "dlq" else f"dlq {args.dlq_action}"
    request = QueueRequest(
        action=action,
        as_json=args.json,
        limit=getattr(args, "limit", None),
        ids=tuple(getattr(args, "ids", ())),
        yes=getattr(args, "yes", False),
        batch_size=getattr(args, "batch_size", None) or REQUEUE_BATCH,
        queue=getattr(args, "queue", None),
        task_type=getattr(args, "task_type", None),
    )
    return run_queue_command(config, request)


def loadtest(config: AgentConfig, args: argparse.Namespace) -> int:
    from farm_agent.commands.loadtest import (  # noqa: PLC0415 - keeps `validate` light
        LoadRequest,
        run_loadtest_command,
    )

    quiet_logging(config)
    request = LoadRequest(
        clients=args.clients,
        duration_s=args.duration,
        route=args.route,
        query=args.query,
        as_json=args.json,
        yes=args.yes,
    )
    return run_loadtest_command(config, request)


def run(config: AgentConfig) -> int:
    from farm_agent.agent import StageFailedError  # noqa: PLC0415 - keeps `validate` light
    from farm_agent.relay import SpoolError  # noqa: PLC0415

    configure_logging(config)
    try:
        asyncio.run(_run_until_signalled(config))
    except (SpoolError, StageFailedError) as err:
        _LOGGER.error("%s", err)  # noqa: TRY400 - the message says it all, no traceback
        return EXIT_FAILURE
    return EXIT_OK


async def _run_until_signalled(config: AgentConfig) -> None:
    from farm_agent.agent import Agent  # noqa: PLC0415 - keeps `validate` light
    from farm_agent.database import finish_cancel_requests  # noqa: PLC0415

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await Agent(config).run(stop)
    finally:
        await finish_cancel_requests()


if __name__ == "__main__":
    sys.exit(main())
