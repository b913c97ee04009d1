"""`farm-agent task submit` and `farm-agent work`: their arguments, output and exit codes.

The work is in `farm_agent.tasks`; its modules are imported when a command runs, so
`farm-agent validate` stays light.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from farm_agent.config import TASK_PRIORITIES, AgentConfig
from farm_agent.logs import configure_logging
from farm_agent.masking import mask, secrets_of
from farm_agent.tasks.task import TaskInputError

if TYPE_CHECKING:
    from farm_agent.tasks.handlers import Handler
    from farm_agent.tasks.submission import TaskRequest

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

_LOGGER = logging.getLogger("farm_agent")

WithConfig = Callable[[argparse.ArgumentParser], argparse.ArgumentParser]


def add_task_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], with_config: WithConfig
) -> None:
    """The `task submit` and `work` commands."""
    task = commands.add_parser("task", help="submit background tasks to the task queues")
    actions = task.add_subparsers(dest="task_action", required=True, metavar="ACTION")
    submit = with_config(
        actions.add_parser(
            "submit",
            help="submit one task (--type) or a file of them (--file); prints the ids",
            description=(
                "Submit one task, or every task of a JSON-lines file "
                '({"type": ..., "priority": ..., "payload": ...} per line; - reads stdin). '
                "Every task is checked first; if one is bad, none is sent. Prints one id a line."
            ),
        )
    )
    what = submit.add_mutually_exclusive_group(required=True)
    what.add_argument("--type", metavar="T", help="the task type, [a-z0-9_.-]{1,64}")
    what.add_argument("--file", metavar="TASKS.jsonl", help="one task per line")
    submit.add_argument("--priority", choices=TASK_PRIORITIES, help="default normal")
    submit.add_argument("--payload", metavar="JSON", help="the payload, JSON (default null)")
    with_config(
        commands.add_parser(
            "work",
            help="run the task worker until SIGTERM/SIGINT, then drain",
            description=(
                "Run tasks from the task queues (and tasks.sources) with the configured "
                "handlers; on SIGTERM stop taking tasks and let running ones finish."
            ),
        )
    )


def run_task_command(config: AgentConfig, args: argparse.Namespace) -> int:
    """Run `task submit` or `work` as parsed; returns the exit code."""
    if args.command == "work":
        return work(config)
    return submit(config, args)


def submit(config: AgentConfig, args: argparse.Namespace) -> int:
    from farm_agent.failures import DATABASE_ERRORS, describe_failure  # noqa: PLC0415
    from farm_agent.schema import SchemaMissingError  # noqa: PLC0415
    from farm_agent.tasks.submission import submit_configured  # noqa: PLC0415

    configure_logging(config)
    logging.getLogger().setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        requests = _requests(args)
    except TaskInputError as err:
        print(f"farm-agent: task submit: {err}; nothing sent", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        ids = asyncio.run(submit_configured(config, requests))
    except (*DATABASE_ERRORS, SchemaMissingError) as err:
        reason = mask(describe_failure(err), secrets_of(config))
        print(f"farm-agent: task submit: {reason}; nothing sent", file=sys.stderr)
        return EXIT_FAILURE
    sys.stdout.write("".join(f"{task_id}\n" for task_id in ids))
    return EXIT_OK


def _requests(args: argparse.Namespace) -> list[TaskRequest]:
    from farm_agent.tasks.submission import parse_payload, read_task_lines, task_request  # noqa: PLC0415

    if args.file is None:
        payload = parse_payload(args.payload) if args.payload is not None else None
        return [task_request(args.type, payload, args.priority or "normal")]
    if args.priority is not None or args.payload is not None:
        raise TaskInputError("--priority and --payload go with --type; a file's lines say them")
    if args.file == "-":
        return read_task_lines(sys.stdin, "stdin")
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TaskInputError(f"{args.file}: cannot read ({err.__class__.__name__})") from None
    return read_task_lines(text.splitlines(), args.file)


def work(config: AgentConfig) -> int:
    from farm_agent.schema import SchemaMissingError  # noqa: PLC0415
    from farm_agent.tasks.handlers import HandlerImportError, load_handlers  # noqa: PLC0415

    configure_logging(config)
    try:
        handlers = load_handlers(config.tasks.handlers)
    except HandlerImportError as err:
        print(f"farm-agent: config error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        asyncio.run(_work_until_signalled(config, handlers))
    except SchemaMissingError as err:
        _LOGGER.error("%s", err)  # noqa: TRY400 - the message says it all
        return EXIT_FAILURE
    return EXIT_OK


async def _work_until_signalled(config: AgentConfig, handlers: dict[str, Handler]) -> None:
    from farm_agent.database import finish_cancel_requests  # noqa: PLC0415
    from farm_agent.tasks.service import serve  # noqa: PLC0415

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await serve(config, handlers, stop)
    finally:
        await finish_cancel_requests()
