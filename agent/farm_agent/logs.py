"""Logging set-up: one line per event on stderr, with every configured secret masked."""

from __future__ import annotations

import logging
import sys

from farm_agent.config import AgentConfig
from farm_agent.masking import mask, secrets_of


class SecretMask(logging.Filter):
    """Last line of defence: no record leaves with a secret in it, whoever logged it."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        masked = mask(message, self._secrets)
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now, so it is masked too.
            record.exc_text = mask(
                logging.Formatter().formatException(record.exc_info), self._secrets
            )
            record.exc_info = None
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure_logging(config: AgentConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretMask(secrets_of(config)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level.upper())
    # paho reports every socket hiccup as an error; the link logs what matters once.
    paho_level = logging.DEBUG if config.log_level == "debug" else logging.CRITICAL
    logging.getLogger("farm_agent.paho").setLevel(paho_level)


def quiet_logging(config: AgentConfig) -> None:
    """One-shot commands log warnings and errors only (masked); their output is the answer."""
    configure_logging(config)
    if logging.getLogger().level < logging.WARNING:
        logging.getLogger().setLevel(logging.WARNING)
