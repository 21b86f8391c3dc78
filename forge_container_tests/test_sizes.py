"""Byte sizes: parsed with decimal and binary units, shown in binary units."""

from __future__ import annotations

import pytest

from forge_container.sizes import human_size, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("1073741824", 1024**3),
        ("512B", 512),
        ("10GiB", 10 * 1024**3),
        ("1.5 gib", 3 * 1024**3 // 2),
        ("500MB", 500 * 1000**2),
        (" 2 TB ", 2 * 1000**4),
        ("4kib", 4096),
    ],
)
def test_sizes_are_parsed_with_decimal_and_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("1G", "unknown unit 'G'"),
        ("ten", "is not a size"),
        ("-1GiB", "is not a size"),
        ("1.5", "whole number of bytes"),
        ("", "is not a size"),
    ],
)
def test_bad_sizes_are_refused_with_a_reason(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_size(text)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (10 * 1024**2, "10.0 MiB"),
        (1024**3 - 1, "1.0 GiB"),
        (5 * 1024**5, "5.0 PiB"),
    ],
)
def test_sizes_are_shown_in_binary_units(size: int, text: str) -> None:
    assert human_size(size) == text
