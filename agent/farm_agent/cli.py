"""`farm-agent`: the commands, their arguments and exit codes; the work lives elsewhere."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from farm_agent import __version__
from farm_agent.config import AgentConfig, ConfigError, load_config
from farm_agent.logs import configure_logging
from farm_agent.spool import SpoolError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_CONFIG = 2

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(f"farm-agent: config error: {err}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if args.command == "validate":
        print(f"{args.config}: valid (agent_id {config.agent_id})")
        return EXIT_OK
    return run(config)


def run(config: AgentConfig) -> int:
    configure_logging(config)
    try:
        asyncio.run(_run_until_signalled(config))
    except SpoolError as err:
        _LOGGER.error("%s", err)  # noqa: TRY400 - the message says it all, no traceback
        return EXIT_FAILURE
    return EXIT_OK


async def _run_until_signalled(config: AgentConfig) -> None:
    from farm_agent.app import Agent  # noqa: PLC0415 - keeps `validate` light

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await Agent(config).run(stop)


if __name__ == "__main__":
    sys.exit(main())
