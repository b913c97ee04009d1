"""Secrets kept out of what the agent shows: logs, errors, health payloads, command output.

Two ways, one mask (`***`):

- `mask` replaces every configured secret (the MQTT password, the DSN passwords,
  `secrets_of`) wherever it appears: the log filter, the health JSON and the commands'
  error lines all call it.
- URLs are cut to where they point. A probe URL's user info, query and fragment may
  hold a token, and HTTP libraries quote the URL in their errors in their own spelling
  (`%2d` decoded to `-`, the scheme in lower case), so masking the configured string
  is not enough: `scrub` cuts every URL-like text to scheme, host, port and path, then
  masks anything left of the URL's secret parts, in any spelling or case.
  `redact_dsn` shows a DSN the same way, keeping the user name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, unquote, unquote_plus, urlsplit

if TYPE_CHECKING:
    from farm_agent.config import AgentConfig

MASK = "***"
# Anything that looks like a URL, up to a space or a quote (as in `URL('...')`).
URL_LIKE = re.compile(r"[a-z][a-z0-9+.-]*://[^\s'\"<>]*", re.IGNORECASE)
# A shorter piece ("1", "on") is no secret, and masking it would garble the text.
MIN_SECRET_CHARS = 4


def secrets_of(config: AgentConfig) -> list[str]:
    """Every secret the config holds: the MQTT password, DSN passwords, Home Assistant's token."""
    found = [config.mqtt.password] if config.mqtt.password else []
    backend = config.backend
    for dsn in (backend.pooler_dsn, backend.direct_dsn, backend.pooler_admin_dsn):
        password = urlsplit(dsn).password if dsn else None
        if password:
            found.append(password)
    if config.home_assistant.token:
        found.append(config.home_assistant.token)
    # Longest first, so a secret containing another is masked whole.
    return sorted(set(found), key=len, reverse=True)


def mask(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret replaced by ***."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def where(url: str) -> str:
    """Scheme, host, port and path of a URL: no user info, query or fragment."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        host = parts.hostname or ""
    except ValueError:
        return "(unparsable URL)"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme.lower()}://{host}{port}{parts.path}"


def redact_dsn(dsn: str) -> str:
    """A DSN fit for logs: scheme, user, host, port and database, never the password."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
    except ValueError:
        return "postgresql://(unparsable)"
    return SplitResult(parts.scheme, f"{user}{host}{port}", parts.path, "", "").geturl()


def scrub(text: str, url: str) -> str:
    """`text` with every URL cut to `where` it points and `url`'s secret parts masked."""
    text = URL_LIKE.sub(lambda match: where(match.group(0)), text)
    for secret in sorted(set(_secret_parts(url)), key=len, reverse=True):
        text = re.sub(re.escape(secret), MASK, text, flags=re.IGNORECASE)
    return text


def _secret_parts(url: str) -> Iterator[str]:
    """The URL's user info, query and fragment, whole and in parts, raw and decoded."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    userinfo = parts.netloc.rpartition("@")[0]
    pieces = [userinfo, *userinfo.split(":"), parts.query, parts.fragment]
    for pair in parts.query.split("&"):
        pieces.extend(pair.split("=", 1))
    for piece in pieces:
        for spelling in (piece, unquote(piece), unquote_plus(piece)):
            if len(spelling) >= MIN_SECRET_CHARS:
                yield spelling
