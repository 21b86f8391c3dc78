"""Owners' cleanup rules as stored: one per owner, validated before anything is saved.

Gitea's fields (enabled, keep count, keep pattern, remove pattern, older than N days,
match the full name) plus ``remove_untagged``. Patterns are checked by
:mod:`~forge_container.registry.rule_patterns`; a refused field raises :class:`RuleInvalid`
and leaves the stored rule as it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.orm import Session

from forge_container.models import CleanupRule, utcnow
from forge_container.registry.cleanup_plan import Rule
from forge_container.registry.packages import PACKAGE_TYPE, insert_ignore
from forge_container.registry.rule_patterns import PatternRefused, compile_pattern
from forge_container.registry.versions import rowcount

#: Bounds of the numeric fields.
MAX_KEEP_COUNT = 1_000_000
MAX_REMOVE_DAYS = 36_500
_FLAGS = ("enabled", "remove_untagged", "match_full_name")
_NUMBERS = {"keep_count": MAX_KEEP_COUNT, "remove_days": MAX_REMOVE_DAYS}
_PATTERNS = ("keep_pattern", "remove_pattern")


class RuleInvalid(ValueError):
    """A rule field that cannot be saved; ``field`` names it. Nothing was saved."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class RuleInfo:
    """An owner's cleanup rule as stored."""

    owner_id: str
    enabled: bool = False
    keep_count: int = 0
    keep_pattern: str = ""
    remove_pattern: str = ""
    remove_days: int = 0
    remove_untagged: bool = False
    match_full_name: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def judges_tags(self) -> bool:
        """Whether it removes tags at all: it needs a tag criterion (see :class:`.Rule`)."""
        return bool(self.keep_count or self.keep_pattern or self.remove_pattern or self.remove_days)


def get_rule(session: Session, owner_id: str) -> RuleInfo | None:
    """The owner's rule, if it has one."""
    row = session.scalars(_rule_query(owner_id)).one_or_none()
    return None if row is None else _info(row)


def save_rule(
    session: Session,
    owner_id: str,
    *,
    enabled: bool | None = None,
    keep_count: int | None = None,
    keep_pattern: str | None = None,
    remove_pattern: str | None = None,
    remove_days: int | None = None,
    remove_untagged: bool | None = None,
    match_full_name: bool | None = None,
) -> RuleInfo:
    """Create or change the owner's rule; fields left ``None`` keep their value; commits.

    :raises RuleInvalid: a field out of range, or a pattern that does not compile, is longer
        than 512 characters or could take exponential time. Nothing is saved then.
    """
    changes = _validated(
        enabled=enabled,
        keep_count=keep_count,
        keep_pattern=keep_pattern,
        remove_pattern=remove_pattern,
        remove_days=remove_days,
        remove_untagged=remove_untagged,
        match_full_name=match_full_name,
    )
    now = utcnow()
    try:
        insert_ignore(
            session,
            CleanupRule,
            {"owner_id": owner_id, "type": PACKAGE_TYPE, "created_at": now, "updated_at": now},
        )
        row = session.scalars(_rule_query(owner_id).with_for_update()).one()
        for name, value in changes.items():
            setattr(row, name, value)
        row.updated_at = now
        session.flush()
        info = _info(row)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return info


def delete_rule(session: Session, owner_id: str) -> bool:
    """Remove the owner's rule; ``False`` when it had none. Commits."""
    result = session.execute(
        delete(CleanupRule).where(
            CleanupRule.owner_id == owner_id, CleanupRule.type == PACKAGE_TYPE
        )
    )
    session.commit()
    return rowcount(result) > 0


def compiled(rule: RuleInfo) -> Rule:
    """The rule's criteria with its patterns compiled.

    :raises RuleInvalid: a stored pattern this version refuses.
    """
    patterns = {}
    for name in _PATTERNS:
        text: str = getattr(rule, name)
        patterns[name] = _compile(name, text) if text else None
    return Rule(
        keep_count=rule.keep_count,
        keep_pattern=patterns["keep_pattern"],
        remove_pattern=patterns["remove_pattern"],
        remove_days=rule.remove_days,
        remove_untagged=rule.remove_untagged,
        match_full_name=rule.match_full_name,
    )


def _validated(**fields: Any) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        if name in _FLAGS and not isinstance(value, bool):
            raise RuleInvalid(name, "must be true or false")
        if name in _NUMBERS and (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 0 <= value <= _NUMBERS[name]
        ):
            raise RuleInvalid(name, f"must be a whole number from 0 to {_NUMBERS[name]}")
        if name in _PATTERNS:
            if not isinstance(value, str):
                raise RuleInvalid(name, "must be a regular expression")
            if value:
                _compile(name, value)
        changes[name] = value
    return changes


def _compile(name: str, pattern: str) -> re.Pattern[str]:
    try:
        return compile_pattern(pattern)
    except PatternRefused as exc:
        raise RuleInvalid(name, f"{pattern!r} is refused: {exc}") from None


def _rule_query(owner_id: str) -> Select[CleanupRule]:
    return select(CleanupRule).where(
        CleanupRule.owner_id == owner_id, CleanupRule.type == PACKAGE_TYPE
    )


def _info(row: CleanupRule) -> RuleInfo:
    return RuleInfo(
        owner_id=row.owner_id,
        enabled=bool(row.enabled),
        keep_count=row.keep_count or 0,
        keep_pattern=row.keep_pattern or "",
        remove_pattern=row.remove_pattern or "",
        remove_days=row.remove_days or 0,
        remove_untagged=bool(row.remove_untagged),
        match_full_name=bool(row.match_full_name),
        created_at=as_utc(row.created_at) if row.created_at else None,
        updated_at=as_utc(row.updated_at) if row.updated_at else None,
    )


def enabled_rules(session: Session, owner_id: str | None, batch: int) -> Iterator[RuleInfo]:
    """Enabled rules in id order, a page at a time (no transaction stays open between pages)."""
    last = 0
    while True:
        query = select(CleanupRule).where(
            CleanupRule.enabled.is_(True), CleanupRule.type == PACKAGE_TYPE, CleanupRule.id > last
        )
        if owner_id is not None:
            query = query.where(CleanupRule.owner_id == owner_id)
        rows = list(session.scalars(query.order_by(CleanupRule.id).limit(batch)))
        page = [(row.id, _info(row)) for row in rows]
        session.rollback()
        yield from (info for _, info in page)
        if len(page) < batch:
            return
        last = page[-1][0]


def as_utc(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
