"""Logging set-up: one line per event on stderr, with every configured secret masked."""

from __future__ import annotations

import logging
import sys
from urllib.parse import urlsplit

from farm_agent.config import AgentConfig

MASK = "***"


def secrets_of(config: AgentConfig) -> list[str]:
    """Every secret the config holds: the MQTT password and the DSN passwords."""
    found = [config.mqtt.password] if config.mqtt.password else []
    for dsn in (config.backend.pooler_dsn, config.backend.direct_dsn):
        password = urlsplit(dsn).password if dsn else None
        if password:
            found.append(password)
    # Longest first, so a secret containing another is masked whole.
    return sorted(set(found), key=len, reverse=True)


class SecretMask(logging.Filter):
    """Last line of defence: no record leaves with a secret in it, whoever logged it."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        masked = message
        for secret in self._secrets:
            masked = masked.replace(secret, MASK)
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now, so it is masked too.
            text = logging.Formatter().formatException(record.exc_info)
            for secret in self._secrets:
                text = text.replace(secret, MASK)
            record.exc_text = text
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
