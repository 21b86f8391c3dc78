"""What a cleanup rule removes from one image: pure decisions on its tags and versions.

Tags are judged by the rule (Gitea's order of tests); versions then follow from the image's
graph: an index needs its children, a manifest keeps its referrers (signatures, SBOMs).
A version goes when nothing kept needs it and either its tags all went, it was untagged
already (with ``remove_untagged``, after the grace period), or it is a child or referrer
of a version that goes. Nothing here touches the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from graphlib import TopologicalSorter

#: The tag Gitea never removes, whatever the rule.
PROTECTED_TAG = "latest"


@dataclass(frozen=True)
class Rule:
    """A rule's criteria, patterns compiled (``None``: no pattern)."""

    keep_count: int = 0
    keep_pattern: re.Pattern[str] | None = None
    remove_pattern: re.Pattern[str] | None = None
    remove_days: int = 0
    remove_untagged: bool = False
    match_full_name: bool = False

    @property
    def judges_tags(self) -> bool:
        """A rule without any tag criterion removes no tags (Gitea's would remove them all)."""
        return bool(self.keep_count or self.keep_pattern or self.remove_pattern or self.remove_days)


@dataclass(frozen=True)
class Version:
    id: int
    digest: str
    subject: str | None
    size: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Tag:
    id: int
    name: str
    version_id: int
    #: The digest of its version.
    digest: str
    updated_at: datetime


@dataclass(frozen=True)
class Doomed:
    """A version to delete, with the tags it has (all of them removed by the rule)."""

    version: Version
    tags: tuple[Tag, ...]
    #: ``tags`` (its tags were removed), ``untagged``, ``index`` (a child of a removed
    #: index) or ``subject`` (a referrer of a removed manifest).
    reason: str
    #: Whether a removed index lists it, so its size is already in the index's.
    in_removed_index: bool


@dataclass(frozen=True)
class Plan:
    """Tags to remove from versions that stay, and versions to delete, parents first."""

    untag: tuple[Tag, ...]
    delete: tuple[Doomed, ...]


def plan_image(
    rule: Rule,
    image: str,
    versions: Iterable[Version],
    tags: Iterable[Tag],
    children: Mapping[int, Iterable[str]],
    *,
    now: datetime,
    grace: timedelta,
) -> Plan:
    """Decide for one image; ``children`` maps an index's version id to its children's digests."""
    by_id = {v.id: v for v in versions}
    all_tags = [t for t in tags if t.version_id in by_id]
    removed = removed_tags(rule, image, all_tags, now=now)
    kept_tagged = {t.version_id for t in all_tags if t.id not in removed}
    tagged = {t.version_id for t in all_tags}
    fresh = {
        v.id
        for v in by_id.values()
        if v.id not in tagged and max(v.created_at, v.updated_at) > now - grace
    }
    edges = _edges(by_id, children)

    seeds = {vid: "tags" for vid in tagged - kept_tagged}
    if rule.remove_untagged:
        seeds.update((vid, "untagged") for vid in by_id if vid not in tagged | fresh)
    doomed = dict(seeds)
    queue = list(seeds)
    while queue:
        for target, kind in edges.get(queue.pop(), ()):
            if target in kept_tagged or target in fresh:
                continue
            if target not in doomed:
                doomed[target] = kind
                queue.append(target)
            elif doomed[target] == "untagged":
                doomed[target] = kind

    kept = _reachable((vid for vid in by_id if vid not in doomed), edges)
    gone = {vid: reason for vid, reason in doomed.items() if vid not in kept}
    tags_of: dict[int, list[Tag]] = {}
    for tag in sorted(all_tags, key=lambda t: t.name):
        tags_of.setdefault(tag.version_id, []).append(tag)
    in_index = {t for vid in gone for t, kind in edges.get(vid, ()) if kind == "index"}
    parents: dict[int, list[int]] = {v: [] for v in sorted(gone, key=lambda v: by_id[v].digest)}
    for parent in gone:
        for target, _ in edges.get(parent, ()):
            if target in gone:
                parents[target].append(parent)
    order = TopologicalSorter(parents).static_order()
    return Plan(
        untag=tuple(
            sorted(
                (t for t in all_tags if t.id in removed and t.version_id not in gone),
                key=lambda t: t.name,
            )
        ),
        delete=tuple(
            Doomed(
                version=by_id[vid],
                tags=tuple(tags_of.get(vid, ())),
                reason=gone[vid],
                in_removed_index=vid in in_index,
            )
            for vid in order
        ),
    )


def removed_tags(rule: Rule, image: str, tags: Iterable[Tag], *, now: datetime) -> set[int]:
    """Ids of the tags the rule removes: Gitea's tests, in Gitea's order.

    The ``keep_count`` most recently pushed tags stay (ties by name, descending), and
    ``latest``; of the others, one goes unless it matches the keep pattern, was pushed
    within ``remove_days`` days, or the remove pattern is set and does not match. Patterns
    fully match the tag, or ``<image>/<tag>`` with ``match_full_name``.
    """
    if not rule.judges_tags:
        return set()
    newest_first = sorted(tags, key=lambda t: (t.updated_at, t.name), reverse=True)
    cutoff = now - timedelta(days=rule.remove_days)
    removed = set()
    for tag in newest_first[rule.keep_count :]:
        if tag.name.lower() == PROTECTED_TAG:
            continue
        text = f"{image}/{tag.name}" if rule.match_full_name else tag.name
        if rule.keep_pattern is not None and rule.keep_pattern.fullmatch(text):
            continue
        if tag.updated_at > cutoff:
            continue
        if rule.remove_pattern is not None and not rule.remove_pattern.fullmatch(text):
            continue
        removed.add(tag.id)
    return removed


def _edges(
    by_id: Mapping[int, Version], children: Mapping[int, Iterable[str]]
) -> dict[int, list[tuple[int, str]]]:
    """Version → versions it keeps: an index its children, a manifest its referrers."""
    by_digest = {v.digest: v.id for v in by_id.values()}
    edges: dict[int, list[tuple[int, str]]] = {}
    for parent, digests in children.items():
        for digest in digests:
            child = by_digest.get(digest)
            if parent in by_id and child is not None and child != parent:
                edges.setdefault(parent, []).append((child, "index"))
    for version in by_id.values():
        subject = by_digest.get(version.subject) if version.subject else None
        if subject is not None and subject != version.id:
            edges.setdefault(subject, []).append((version.id, "subject"))
    return edges


def _reachable(roots: Iterable[int], edges: Mapping[int, list[tuple[int, str]]]) -> set[int]:
    seen = set(roots)
    queue = list(seen)
    while queue:
        for target, _ in edges.get(queue.pop(), ()):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen
