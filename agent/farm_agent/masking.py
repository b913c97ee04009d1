"""Probe URLs fit to show: where they point, never the token they may carry.

A URL's user info, query and fragment may hold a secret. HTTP libraries quote the
URL in their errors in their own spelling (`%2d` decoded to `-`, the scheme in lower
case), so masking the configured string is not enough: every URL-like text is cut
to scheme, host, port and path, then anything left of the URL's secret parts, in
any spelling or case, is masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import unquote, unquote_plus, urlsplit

MASK = "***"
# Anything that looks like a URL, up to a space or a quote (as in `URL('...')`).
URL_LIKE = re.compile(r"[a-z][a-z0-9+.-]*://[^\s'\"<>]*", re.IGNORECASE)
# A shorter piece ("1", "on") is no secret, and masking it would garble the text.
MIN_SECRET_CHARS = 4


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
