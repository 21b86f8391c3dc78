"""Cleanup rule patterns: case-insensitive full-match regexes, refused when they could hang.

Owners write these patterns and a worker runs them against every tag, so a pattern must
not backtrack for ever. Python's ``re`` has no time limit; instead the parsed pattern is
checked for the shapes that blow up: a repetition of something that can split a string in
more than one way (``(a+)+``, ``(a|aa)*``: exponential) and long runs of repetitions that
can match the same characters (``.*.*.*.*``: polynomial). The texts matched are short
(a tag, or ``<image>/<tag>``) and use a small alphabet, which makes the check exact enough.
Backreferences are refused too, as Gitea's (RE2) patterns have none.
"""

from __future__ import annotations

import importlib
import re
import string
from collections.abc import Iterable, Iterator
from typing import Any

#: The longest pattern accepted.
MAX_PATTERN_LENGTH = 512
#: Repetitions in a row that may overlap (``.*-.*-.*`` is fine, one more is not).
MAX_OVERLAPPING_REPEATS = 3
#: Every character a tag or an image name may contain: what patterns are matched against.
ALPHABET = frozenset(string.ascii_letters + string.digits + "._-/")

# The parser behind ``re.compile`` (public as ``sre_parse``, which warns when imported).
_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")
_REPEATS = (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT)
_CATEGORIES = {
    _c.CATEGORY_DIGIT: r"\d",
    _c.CATEGORY_NOT_DIGIT: r"\D",
    _c.CATEGORY_SPACE: r"\s",
    _c.CATEGORY_NOT_SPACE: r"\S",
    _c.CATEGORY_WORD: r"\w",
    _c.CATEGORY_NOT_WORD: r"\W",
}


class PatternRefused(ValueError):
    """A pattern that does not compile, is too long, or could take exponential time."""


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a rule pattern (case-insensitive; callers use ``fullmatch``).

    :raises PatternRefused: with a message saying why.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternRefused(f"longer than {MAX_PATTERN_LENGTH} characters")
    if "\0" in pattern:
        raise PatternRefused("contains a NUL character")
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
        tree = _parser.parse(pattern, re.IGNORECASE)
    except (re.error, OverflowError, RecursionError) as exc:
        raise PatternRefused(f"not a valid regular expression: {exc}") from None
    problem = _problem(list(tree))
    if problem is not None:
        raise PatternRefused(problem)
    return compiled


def _problem(items: list[tuple[Any, Any]]) -> str | None:
    if _longest_overlapping_run(items) > MAX_OVERLAPPING_REPEATS:
        return (
            f"more than {MAX_OVERLAPPING_REPEATS} repetitions in a row can match the same"
            " characters, which can take very long: simplify the pattern"
        )
    for op, av in items:
        if op in (_c.GROUPREF, _c.GROUPREF_EXISTS):
            return "backreferences are not supported"
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT) and av[1] > 1 and _ambiguous(list(av[2])):
            return (
                "a repetition of something that can itself match in several ways"
                " (like (a+)+ or (a|aa)*) can take exponential time: simplify the pattern"
            )
        for child in _children(op, av):
            problem = _problem(list(child))
            if problem is not None:
                return problem
    return None


def _children(op: Any, av: Any) -> list[Any]:
    if op is _c.SUBPATTERN:
        return [av[3]]
    if op in _REPEATS:
        return [av[2]]
    if op is _c.BRANCH:
        return list(av[1])
    if op is _c.ATOMIC_GROUP:
        return [av]
    if op in (_c.ASSERT, _c.ASSERT_NOT):
        return [av[1]]
    if op is _c.GROUPREF_EXISTS:
        return [branch for branch in av[1:] if branch is not None]
    return []


def _ambiguous(body: list[tuple[Any, Any]]) -> bool:
    """Whether repeating ``body`` may split one string into iterations in several ways.

    A body of fixed shape cannot; nor can one whose every iteration starts (or ends) with
    a literal character that nothing else in the body matches: that character marks where
    iterations begin, as in ``(\\.\\d+)*``.
    """
    while len(body) == 1 and body[0][0] is _c.SUBPATTERN:
        body = list(body[0][1][3])
    if not _variable(body):
        return False
    return not (_delimited(body, 0) or _delimited(body, -1))


def _variable(items: Iterable[tuple[Any, Any]]) -> bool:
    for op, av in items:
        if op is _c.BRANCH or (op in _REPEATS and av[0] != av[1]):
            return True
        if any(_variable(child) for child in _children(op, av)):
            return True
    return False


def _delimited(body: list[tuple[Any, Any]], index: int) -> bool:
    """Whether item ``index`` (first or last) is a literal per alternative, unmatched elsewhere."""
    edge = body[index]
    op, av = edge
    if op is _c.LITERAL:
        marks = [edge]
    elif op is _c.BRANCH:
        alternatives = [list(alt) for alt in av[1]]
        if not all(alternatives):
            return False
        marks = [alt[index] for alt in alternatives]
        if any(mark[0] is not _c.LITERAL for mark in marks):
            return False
    else:
        return False
    delimiters = {ch for mark in marks for ch in _variants(chr(mark[1]))}
    others = [leaf for leaf in _leaves(body) if not any(leaf is mark for mark in marks)]
    return not any(_matches(leaf, ch) for leaf in others for ch in delimiters)


def _longest_overlapping_run(items: list[tuple[Any, Any]]) -> int:
    """The most variable repetitions in one sequence not separated by a character they lack."""
    longest = run = 0
    footprint: set[str] = set()
    for op, av in _flatten(items):
        chars = _footprint([(op, av)])
        if op in _REPEATS and av[0] != av[1]:
            if chars & footprint:
                run += 1
            else:
                run, footprint = 1, set()
            footprint |= chars
            longest = max(longest, run)
        elif not chars <= footprint:
            run, footprint = 0, set()
    for op, av in items:
        for child in _children(op, av):
            longest = max(longest, _longest_overlapping_run(list(child)))
    return longest


def _flatten(items: list[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """A sequence with its plain groups opened up: ``(.*)(.*)`` is two repetitions in a row."""
    for op, av in items:
        if op is _c.SUBPATTERN:
            yield from _flatten(list(av[3]))
        else:
            yield op, av


def _footprint(items: list[tuple[Any, Any]]) -> set[str]:
    return {ch for leaf in _leaves(items) for ch in ALPHABET if _matches(leaf, ch)}


def _leaves(items: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """The one-character items (and anchors) of a pattern, as the parser made them."""
    for item in items:
        children = _children(*item)
        if children:
            for child in children:
                yield from _leaves(child)
        else:
            yield item


def _matches(leaf: tuple[Any, Any], ch: str) -> bool:
    """Whether a one-character item may match ``ch`` in any case (unknown items: yes)."""
    op, av = leaf
    if op is _c.AT:
        return False
    if op is _c.LITERAL:
        return chr(av) in _variants(ch)
    if op is _c.NOT_LITERAL:
        return chr(av).lower() != ch.lower()
    if op is _c.IN:
        return any(_in_set(av, variant) for variant in _variants(ch))
    return True


def _in_set(items: list[tuple[Any, Any]], ch: str) -> bool:
    negate = bool(items) and items[0][0] is _c.NEGATE
    hit = False
    for op, av in items[1:] if negate else items:
        if op is _c.LITERAL:
            hit = chr(av) == ch
        elif op in (_c.RANGE, _c.RANGE_UNI_IGNORE):
            hit = av[0] <= ord(ch) <= av[1]
        elif op is _c.CATEGORY and av in _CATEGORIES:
            hit = re.fullmatch(_CATEGORIES[av], ch) is not None
        else:
            return True
        if hit:
            break
    return hit != negate


def _variants(ch: str) -> set[str]:
    return {ch, ch.lower(), ch.upper()}
