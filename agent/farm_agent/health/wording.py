"""Numbers in the health's sentences, as an operator reads them."""

from __future__ import annotations


def figure(value: float) -> str:
    """A number as an operator reads it: 140, 97.9, 0.31."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.2g}"
