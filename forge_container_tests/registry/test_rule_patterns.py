"""Cleanup rule patterns: what compiles, and the shapes refused because they could hang."""

from __future__ import annotations

import pytest

from forge_container.registry.rule_patterns import PatternRefused, compile_pattern


@pytest.mark.parametrize(
    "pattern",
    [
        r"v\d+\.\d+\.\d+(-rc\d+)?",
        r"v\d+(\.\d+)*",
        r"sha256-[0-9a-f]{64}(\.sig|\.att|\.sbom)?",
        r"(\w+-)*\w+",
        r"([a-z]+\.)*[a-z]+",
        r"(main|master)+",
        r"(\.[^.]+)*",
        r"(-a+|_b+)*",
        r"(a+-|b+-)*",
        r"(ab|ac)*",
        r".*-rc.*",
        r"(.*)/(.*)/(.*)",
        r"package/test|different/keep",
        r"k.+p",
        r"(?i)LATEST|stable",
        r"a*+b*+",
    ],
)
def test_everyday_patterns_compile(pattern: str) -> None:
    assert compile_pattern(pattern).pattern == pattern


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("v[0-9", "not a valid regular expression"),
        ("a{99999999999}", "not a valid regular expression"),
        ("x" * 513, "longer than 512 characters"),
        ("a\0", "NUL"),
        (r"(a)\1", "backreferences"),
        (r"(a)(?(1)b|c)", "backreferences"),
        (r"(a+)+b", "exponential"),
        (r"(x+x+)+y", "exponential"),
        (r"(a|aa)+", "exponential"),
        (r"(\.?\d+)*", "exponential"),
        (r"(\d+\.?)*", "exponential"),
        (r"(.*-)*x", "exponential"),
        (r"(.*)*", "exponential"),
        (r"(?:(?:a+)?b?)*c", "exponential"),
        (r".*.*.*.*", "in a row"),
        (r".*a.*a.*a.*", "in a row"),
        (r"(.*)(.*)(.*)(.*)", "in a row"),
        (r"\d*\d*\d*\d*x", "in a row"),
    ],
)
def test_patterns_that_fail_or_could_hang_are_refused(pattern: str, reason: str) -> None:
    with pytest.raises(PatternRefused, match=reason):
        compile_pattern(pattern)


def test_patterns_match_case_insensitively() -> None:
    assert compile_pattern(r"v1\.[0-9]+").fullmatch("V1.10")
