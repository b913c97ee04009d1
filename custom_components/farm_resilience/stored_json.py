"""Strict readers of stored JSON: each returns the value or raises naming the key at fault."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .health_fields import shown


class UnreadableStorageError(ValueError):
    """Stored data this version cannot read; the message says where."""


def read_object(value: Any, where: str) -> Mapping[str, Any]:
    """Return a JSON object."""
    if not isinstance(value, dict):
        raise UnreadableStorageError(f"{where} is {type(value).__name__}, not an object")
    return value


def read_list(value: Any, where: str) -> list[Any]:
    """Return a JSON list."""
    if not isinstance(value, list):
        raise UnreadableStorageError(f"{where} is {type(value).__name__}, not a list")
    return value


def read_number(value: Any, where: str) -> float:
    """Return a finite number."""
    if not isinstance(value, bool) and isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            number = math.inf
        if math.isfinite(number):
            return number
    raise UnreadableStorageError(f"{where} is {shown(value)}, not a number")


def read_count(value: Any, where: str) -> int:
    """Return a whole number, zero or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UnreadableStorageError(f"{where} is {shown(value)}, not a count")
    return value
