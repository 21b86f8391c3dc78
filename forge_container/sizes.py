"""Byte sizes as people write and read them: ``"10GiB"`` in, ``"1.5 KiB"`` out."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", re.IGNORECASE)
_HUMAN_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def parse_size(text: str) -> int:
    """Bytes from ``"1073741824"``, ``"1 GiB"``, ``"1.5GB"``: B, KB/MB/GB/TB (powers of
    1000) or KiB/MiB/GiB/TiB (powers of 1024), case-insensitive.

    :raises ValueError: anything else (``"1G"`` is refused as ambiguous).
    """
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size: use a number and a unit, like 10GiB or 500MB")
    number, unit = match[1], match[2].lower()
    if unit not in _UNITS:
        raise ValueError(
            f"{text!r}: unknown unit {match[2]!r}; use B, KB, MB, GB, TB (powers of 1000)"
            " or KiB, MiB, GiB, TiB (powers of 1024)"
        )
    try:
        value = Decimal(number) * _UNITS[unit]
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"{text!r} is not a size") from None
    if value != value.to_integral_value():
        raise ValueError(f"{text!r} is not a whole number of bytes")
    return int(value)


def human_size(size: int) -> str:
    """``1536`` as ``"1.5 KiB"``; bytes below 1 KiB as ``"512 B"``."""
    value = float(size)
    index = 0
    while round(value, 1) >= 1024 and index < len(_HUMAN_UNITS) - 1:
        value /= 1024
        index += 1
    if index == 0:
        return f"{size} B"
    return f"{value:.1f} {_HUMAN_UNITS[index]}"
