"""Owners' cleanup rules: stored and validated, then what they remove and what they keep."""

from __future__ import annotations

import dataclasses
import io
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text, update
from sqlalchemy.orm import Session

from forge_container import events
from forge_container.config import Settings
from forge_container.errors import ManifestUnknown
from forge_container.mediatypes import OCI_INDEX, OCI_MANIFEST
from forge_container.models import CleanupRule, utcnow
from forge_container.registry import cleanup, manifests
from forge_container.registry.cleanup import CleanupReport, RuleInfo, RuleInvalid
from forge_container.registry.cleanup_rules import compiled
from forge_container.state import get_state
from forge_container_tests.cleanup_fixtures import DAY, NOW, Image, digest_of
from forge_container_tests.manifest_fixtures import (
    descriptor,
    empty_config,
    image_config,
    image_manifest,
    index_manifest,
    platform,
    seed_blob,
)

OWNER = "u:1"
HOUR = timedelta(hours=1)


@pytest.fixture
def settings(app: Flask) -> Settings:
    return get_state(app).settings


def run(app: Flask, owner_id: str | None = OWNER, **kwargs: Any) -> CleanupReport:
    state = get_state(app)
    kwargs.setdefault("now", NOW)
    settings = kwargs.pop("settings", state.settings)
    return cleanup.apply_rules(
        state.db.session(), state.storage, settings, owner_id=owner_id, **kwargs
    )


def rule(session: Session, owner_id: str = OWNER, **fields: Any) -> RuleInfo:
    return cleanup.save_rule(session, owner_id, enabled=True, **fields)


def removed_digests(report: CleanupReport) -> set[str]:
    return {v.digest for v in report.versions}


# Storing rules


def test_a_rule_is_saved_changed_field_by_field_and_deleted(session: Session) -> None:
    assert cleanup.get_rule(session, OWNER) is None
    saved = cleanup.save_rule(session, OWNER, keep_count=5, keep_pattern=r"v\d+")
    assert (saved.enabled, saved.keep_count, saved.keep_pattern) == (False, 5, r"v\d+")
    changed = cleanup.save_rule(session, OWNER, enabled=True, remove_days=30)
    assert changed.keep_count == 5 and changed.keep_pattern == r"v\d+"
    assert changed.enabled and changed.remove_days == 30
    assert cleanup.get_rule(session, OWNER) == changed
    cleared = cleanup.save_rule(session, OWNER, keep_pattern="")
    assert cleared.keep_pattern == ""
    assert cleanup.delete_rule(session, OWNER) is True
    assert cleanup.get_rule(session, OWNER) is None
    assert cleanup.delete_rule(session, OWNER) is False


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"keep_pattern": "v[0-9"}, "keep_pattern", "not a valid regular expression"),
        ({"remove_pattern": "(a+)+"}, "remove_pattern", "exponential time"),
        ({"remove_pattern": "x" * 513}, "remove_pattern", "longer than 512"),
        ({"keep_pattern": "a\0b"}, "keep_pattern", "NUL"),
        ({"keep_pattern": r"(a)\1"}, "keep_pattern", "backreferences"),
        ({"remove_pattern": ".*.*.*.*"}, "remove_pattern", "in a row"),
        ({"keep_count": -1}, "keep_count", "from 0 to"),
        ({"remove_days": 40_000}, "remove_days", "from 0 to"),
        ({"enabled": "yes"}, "enabled", "true or false"),
        ({"keep_count": True}, "keep_count", "whole number"),
    ],
)
def test_a_bad_field_is_refused_by_name_and_nothing_is_saved(
    session: Session, fields: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(RuleInvalid, match=message) as info:
        cleanup.save_rule(session, OWNER, **{"remove_days": 3, **fields})
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert cleanup.get_rule(session, OWNER) is None
    before = cleanup.save_rule(session, OWNER, remove_days=3)
    with pytest.raises(RuleInvalid):
        cleanup.save_rule(session, OWNER, **{"remove_days": 7, **fields})
    assert cleanup.get_rule(session, OWNER) == before


def test_rules_of_owners_are_separate(session: Session) -> None:
    cleanup.save_rule(session, "u:1", keep_count=1)
    cleanup.save_rule(session, "o:2", keep_count=2)
    first, second = cleanup.get_rule(session, "u:1"), cleanup.get_rule(session, "o:2")
    assert first is not None and second is not None
    assert (first.keep_count, second.keep_count) == (1, 2)


# Which tags go: Gitea's semantics (gitea-registry.md §9.3)

TAG_CASES = [
    pytest.param(
        {"enabled": False, "remove_pattern": ".*"}, {"a": 5, "b": 6}, {"a", "b"}, id="disabled"
    ),
    pytest.param(
        {"keep_count": 2},
        {"test-1": 1, "test-2": 2, "test-3": 3, "test-4": 4},
        {"test-1", "test-2"},
        id="keep-count",
    ),
    pytest.param({"keep_pattern": "k.+p"}, {"keep": 5, "v1.0": 5}, {"keep"}, id="keep-pattern"),
    pytest.param({"remove_days": 60}, {"old": 100, "keep": 1}, {"keep"}, id="remove-days"),
    pytest.param(
        {"remove_pattern": r"t[e]+st-\d+"},
        {"test": 5, "test-3": 5, "test-4": 5},
        {"test"},
        id="remove-pattern",
    ),
    pytest.param(
        {"remove_pattern": "app/test|different/keep", "match_full_name": True},
        {"test": 5, "keep": 5},
        {"keep"},
        id="match-full-name",
    ),
    pytest.param(
        {"remove_pattern": "app/test"},
        {"test": 5},
        {"test"},
        id="full-name-pattern-on-tags-only",
    ),
    pytest.param(
        {"remove_pattern": r"V1\..*"}, {"v1.0": 5, "v2.0": 5}, {"v2.0"}, id="case-insensitive"
    ),
    pytest.param(
        {"remove_pattern": "v1"}, {"v1": 5, "v10": 5, "xv1": 5}, {"v10", "xv1"}, id="full-match"
    ),
    pytest.param(
        {"remove_pattern": ".*"},
        {"latest": 50, "Latest": 50, "v1": 50},
        {"latest", "Latest"},
        id="latest-is-never-removed",
    ),
    pytest.param({}, {"a": 50, "b": 60}, {"a", "b"}, id="no-tag-criterion-removes-no-tags"),
    pytest.param(
        {
            "keep_count": 1,
            "keep_pattern": "dummy",
            "remove_days": 7,
            "remove_pattern": r"t[e]+st-\d+",
        },
        {"keep": 0.5, "dummy": 30, **{f"test-{n}": n for n in range(1, 11)}},
        {"keep", "dummy", *(f"test-{n}" for n in range(1, 7))},
        id="mixed",
    ),
]


@pytest.mark.parametrize(("fields", "ages", "kept"), TAG_CASES)
def test_which_tags_a_rule_keeps(
    app: Flask, session: Session, fields: dict[str, Any], ages: dict[str, float], kept: set[str]
) -> None:
    image = Image(session)
    for name, days in ages.items():
        image.version(name, age=days * DAY, tags=[name])
    cleanup.save_rule(session, OWNER, **{"enabled": True, **fields})
    report = run(app)
    assert image.tags() == kept
    gone = set(ages) - kept
    assert {t for v in report.versions for t in v.tags} == gone
    assert image.versions() == {digest_of(name) for name in kept}
    assert {v.reason for v in report.versions} <= {"tags"}


def test_keep_count_counts_tags_by_push_time_and_ties_by_name(app: Flask, session: Session) -> None:
    image = Image(session)
    image.version("m", age=10 * DAY, tags=["v1", "v3"])
    image.version("n", age=10 * DAY, tags=["v2"])
    image.tag("v0", "n", age=1 * DAY)
    rule(session, keep_count=2)
    run(app)
    assert image.tags() == {"v0", "v3"}
    assert image.versions() == {digest_of("m"), digest_of("n")}


def test_a_manifest_stays_while_one_of_its_tags_is_kept(app: Flask, session: Session) -> None:
    image = Image(session)
    image.version("m", tags=["v1", "stable"])
    rule(session, remove_pattern="v.*")
    report = run(app)
    assert image.tags() == {"stable"}
    assert image.versions() == {digest_of("m")}
    assert [(t.tag, t.digest) for t in report.tags] == [("v1", digest_of("m"))]
    assert report.versions == () and report.tag_count == 1


# Which manifests go: untagged, index children, referrers, grace


def test_untagged_manifests_go_only_when_asked_and_after_the_grace(
    app: Flask, session: Session
) -> None:
    image = Image(session)
    image.version("kept", tags=["v1"])
    image.version("old", age=2 * HOUR)
    image.version("pushing", age=10 * timedelta(minutes=1))
    rule(session)
    assert run(app).versions == ()
    rule(session, remove_untagged=True)
    report = run(app)
    assert [(v.digest, v.reason) for v in report.versions] == [(digest_of("old"), "untagged")]
    assert image.versions() == {digest_of("kept"), digest_of("pushing")}


def test_children_of_a_kept_index_stay_even_untagged(app: Flask, session: Session) -> None:
    image = Image(session)
    image.version("amd64")
    image.version("arm64")
    image.version("index", children=["amd64", "arm64"], tags=["v2"])
    image.version("stray")
    rule(session, remove_untagged=True, remove_pattern="v1")
    report = run(app)
    assert removed_digests(report) == {digest_of("stray")}
    assert image.versions() == {digest_of(k) for k in ("amd64", "arm64", "index")}


def test_a_removed_index_takes_its_own_children_but_not_shared_or_tagged_ones(
    app: Flask, session: Session
) -> None:
    image = Image(session)
    for child in ("a", "b", "c", "d"):
        image.version(child)
    image.tag("v1-arm", "d")
    image.version("old-index", children=["a", "b", "d"], tags=["v1"])
    image.version("new-index", children=["b", "c"], tags=["v2"])
    rule(session, remove_pattern="v1")
    report = run(app)
    assert [(v.digest, v.reason) for v in report.versions] == [
        (digest_of("old-index"), "tags"),
        (digest_of("a"), "index"),
    ]
    assert image.versions() == {digest_of(k) for k in ("b", "c", "d", "new-index")}
    assert image.tags() == {"v1-arm", "v2"}
    # The index's size holds its children's: the report counts them once.
    assert report.size == 1000


def test_nested_indexes_are_followed(app: Flask, session: Session) -> None:
    image = Image(session)
    image.version("leaf")
    image.version("inner", children=["leaf"])
    image.version("outer", children=["inner"], tags=["v1"])
    image.version("other", tags=["v2"])
    rule(session, remove_pattern="v1")
    report = run(app)
    assert [v.digest for v in report.versions] == [digest_of(k) for k in ("outer", "inner", "leaf")]
    assert image.versions() == {digest_of("other")}


def test_referrers_follow_their_subject_both_ways(app: Flask, session: Session) -> None:
    image = Image(session)
    image.version("kept", tags=["v2"])
    image.version("kept.sig", subject="kept")
    image.version("gone", tags=["v1"])
    image.version("gone.sig", subject="gone")
    image.version("gone.sbom", subject="gone")
    image.version("gone.sbom.sig", subject="gone.sbom")
    rule(session, remove_pattern="v1", remove_untagged=True)
    report = run(app)
    assert {(v.digest, v.reason) for v in report.versions} == {
        (digest_of("gone"), "tags"),
        (digest_of("gone.sig"), "subject"),
        (digest_of("gone.sbom"), "subject"),
        (digest_of("gone.sbom.sig"), "subject"),
    }
    assert image.versions() == {digest_of("kept"), digest_of("kept.sig")}


def test_referrers_of_a_removed_image_go_without_remove_untagged(
    app: Flask, session: Session
) -> None:
    image = Image(session)
    image.version("amd64")
    image.version("amd64.sig", subject="amd64")
    image.version("index", children=["amd64"], tags=["v1"])
    image.version("index.sig", subject="index")
    image.version("lonely.sig", subject="never-pushed")
    rule(session, remove_pattern="v1")
    report = run(app)
    assert removed_digests(report) == {
        digest_of(k) for k in ("index", "index.sig", "amd64", "amd64.sig")
    }
    assert image.versions() == {digest_of("lonely.sig")}


def test_a_referrer_whose_subject_is_missing_is_untagged_like_any_other(
    app: Flask, session: Session
) -> None:
    image = Image(session)
    image.version("lonely.sig", subject="never-pushed")
    rule(session, remove_untagged=True)
    assert removed_digests(run(app)) == {digest_of("lonely.sig")}


def test_a_tagged_referrer_keeps_its_tag_when_its_subject_goes(
    app: Flask, session: Session
) -> None:
    image = Image(session)
    image.version("gone", tags=["v1"])
    image.version("gone.sig", subject="gone", tags=["signature"])
    rule(session, remove_pattern="v1")
    assert removed_digests(run(app)) == {digest_of("gone")}
    assert image.tags() == {"signature"}


def test_the_grace_protects_fresh_children_and_referrers_of_a_removed_index(
    app: Flask, session: Session
) -> None:
    image = Image(session)
    image.version("fresh-child", age=5 * timedelta(minutes=1))
    image.version("fresh-child.sig", subject="fresh-child")
    image.version("old-child")
    image.version("index", children=["fresh-child", "old-child"], tags=["v1"])
    rule(session, remove_pattern="v1", remove_untagged=True)
    assert removed_digests(run(app)) == {digest_of("index"), digest_of("old-child")}
    assert image.versions() == {digest_of("fresh-child"), digest_of("fresh-child.sig")}


# Preview, dry run, batches, idempotency, events


def test_preview_is_what_apply_then_removes(app: Flask, session: Session) -> None:
    state = get_state(app)
    image = Image(session)
    image.version("amd64")
    image.version("index", children=["amd64"], tags=["v1", "old"])
    image.version("v2", tags=["v2"])
    image.version("stray")
    rule(session, keep_count=1, remove_untagged=True)
    before = (image.versions(), image.tags())
    preview = cleanup.preview(session, state.storage, state.settings, OWNER, now=NOW)
    dry = run(app, dry_run=True)
    assert (image.versions(), image.tags()) == before
    assert preview == dry and preview.dry_run
    applied = run(app)
    assert not applied.dry_run
    assert dataclasses.replace(applied, dry_run=True) == preview
    assert preview.tag_count == 2 and len(preview.versions) == 3
    assert run(app) == CleanupReport(dry_run=False, rules=1)


def test_preview_shows_a_disabled_rule_and_apply_skips_it(app: Flask, session: Session) -> None:
    state = get_state(app)
    image = Image(session)
    image.version("m", tags=["v1"])
    cleanup.save_rule(session, OWNER, remove_pattern="v1")
    preview = cleanup.preview(session, state.storage, state.settings, OWNER, now=NOW)
    assert removed_digests(preview) == {digest_of("m")}
    assert run(app) == CleanupReport(dry_run=False)
    assert image.tags() == {"v1"}
    empty = cleanup.preview(session, state.storage, state.settings, "u:none", now=NOW)
    assert empty == CleanupReport(dry_run=True)


def test_apply_runs_every_enabled_rule_or_one_owners(app: Flask, session: Session) -> None:
    alice = Image(session, owner_id="u:1", owner="alice")
    acme = Image(session, owner_id="o:2", owner="acme")
    off = Image(session, owner_id="u:3", owner="bob")
    for image in (alice, acme, off):
        image.version("m", tags=["v1"])
    rule(session, "u:1", remove_pattern="v1")
    rule(session, "o:2", remove_pattern="v1")
    cleanup.save_rule(session, "u:3", enabled=False, remove_pattern="v1")
    assert {v.owner_name for v in run(app, "o:2").versions} == {"acme"}
    assert alice.tags() == {"v1"}
    report = run(app, None)
    assert report.rules == 2
    assert {(v.owner_id, v.image) for v in report.versions} == {("u:1", "app")}
    assert off.tags() == {"v1"}


def test_bounded_batches_remove_everything_across_many_images(
    app: Flask, session: Session, settings: Settings
) -> None:
    images = [Image(session, name=f"img-{n}") for n in range(5)]
    for image in images:
        for n in range(4):
            image.version(f"{image.name}-{n}", tags=[f"t{n}"])
        image.version(f"{image.name}-child")
        image.version(f"{image.name}-index", children=[f"{image.name}-child"], tags=["idx"])
    rule(session, keep_count=1, match_full_name=True, remove_pattern=r"img-[0-3]/.*")
    small = dataclasses.replace(settings, job_batch_size=2)
    report = run(app, settings=small)
    assert len(report.versions) == 4 * 5 and report.tag_count == 4 * 4
    assert [len(image.versions()) for image in images] == [1, 1, 1, 1, 6]
    assert run(app, settings=small).versions == ()


def test_a_rule_whose_stored_pattern_is_refused_fails_alone(app: Flask, session: Session) -> None:
    broken = Image(session, owner_id="u:1")
    fine = Image(session, owner_id="u:2", owner="bob")
    broken.version("m", tags=["v1"])
    fine.version("m", tags=["v1"])
    rule(session, "u:1", remove_pattern="v1")
    rule(session, "u:2", remove_pattern="v1")
    session.execute(
        update(CleanupRule).where(CleanupRule.owner_id == "u:1").values(remove_pattern="(a+)+")
    )
    session.commit()
    report = run(app, None)
    assert report.failed == ("u:1",)
    assert {v.owner_id for v in report.versions} == {"u:2"}
    assert broken.tags() == {"v1"}


def test_events_are_sent_after_the_commit(app: Flask, session: Session) -> None:
    image = Image(session)
    image.version("gone", tags=["v1", "v1.0"])
    image.version("kept", tags=["v2", "old"])
    rule(session, remove_pattern="v1.*|old")
    received: list[tuple[str, dict[str, Any]]] = []
    engine = get_state(app).db.engine

    def stored(digest: str) -> bool:
        with engine.connect() as connection:
            query = text("SELECT count(*) FROM container_package_version WHERE digest = :d")
            return bool(connection.execute(query, {"d": digest}).scalar())

    def on_tag(sender: str, **details: Any) -> None:
        received.append(("tag", details))

    def on_manifest(sender: str, **details: Any) -> None:
        assert not stored(details["digest"]), "sent before the commit"
        received.append(("manifest", details))

    with (
        events.tag_deleted.connected_to(on_tag),
        events.manifest_deleted.connected_to(on_manifest),
    ):
        run(app)
    assert received == [
        (
            "tag",
            {
                "owner_id": OWNER,
                "owner_name": "alice",
                "image": "app",
                "digest": digest_of("kept"),
                "tag": "old",
                "principal_id": None,
            },
        ),
        (
            "manifest",
            {
                "owner_id": OWNER,
                "owner_name": "alice",
                "image": "app",
                "digest": digest_of("gone"),
                "tags": ("v1", "v1.0"),
                "principal_id": None,
            },
        ),
    ]


def test_no_events_for_a_dry_run(app: Flask, session: Session) -> None:
    Image(session).version("gone", tags=["v1"])
    rule(session, remove_pattern="v1")
    received: list[Any] = []
    with events.manifest_deleted.connected_to(lambda sender, **kw: received.append(kw)):
        assert run(app, dry_run=True).versions
    assert received == []


def test_a_manifest_tagged_since_the_plan_is_kept(app: Flask, session: Session) -> None:
    """The plan is checked again in each transaction: a push in between wins."""
    image = Image(session)
    image.version("gone", tags=["v1"])
    rule(session, remove_pattern="v1")
    plan = cleanup._plan(
        session,
        compiled(cleanup.get_rule(session, OWNER) or RuleInfo(OWNER)),
        image.package_id,
        "app",
        now=NOW,
        grace=HOUR,
    )
    session.rollback()
    image.tag("v2", "gone")
    settings = get_state(app).settings
    report = cleanup._carry_out(session, settings, OWNER, "alice", "app", plan)
    assert report.versions == ()
    assert [t.tag for t in report.tags] == ["v1"]
    assert image.tags() == {"v2"}


# Through real pushes


def test_a_pushed_multi_arch_image_with_a_signature_goes_whole(
    app: Flask, session: Session
) -> None:
    state = get_state(app)
    layer = seed_blob(app, OWNER, "app", b"shared layer")
    children = {}
    for arch in ("amd64", "arm64", "s390x"):
        body = image_manifest(image_config(app, OWNER, "app", arch=arch), [layer])
        children[arch] = (push(app, body, OCI_MANIFEST, None), body)
    old = index_manifest(
        [
            descriptor(children[a][1], OCI_MANIFEST, platform=platform("linux", a))
            for a in ("amd64", "s390x")
        ]
    )
    new = index_manifest(
        [
            descriptor(children[a][1], OCI_MANIFEST, platform=platform("linux", a))
            for a in ("amd64", "arm64")
        ]
    )
    old_digest = push(app, old, OCI_INDEX, "v1")
    push(app, new, OCI_INDEX, "v2")
    signature = image_manifest(
        empty_config(app, OWNER, "app"),
        [],
        artifactType="application/vnd.dev.cosign.artifact.sig.v1+json",
        subject=descriptor(old, OCI_INDEX),
    )
    signature_digest = push(app, signature, OCI_MANIFEST, None)
    rule(session, remove_pattern="v1")
    report = run(app, now=utcnow() + 2 * HOUR)
    assert removed_digests(report) == {old_digest, signature_digest, children["s390x"][0]}
    for reference in ("v2", children["amd64"][0], children["arm64"][0]):
        manifests.get_manifest(
            session, state.storage, owner_id=OWNER, image="app", reference=reference
        )
    with pytest.raises(ManifestUnknown):
        manifests.get_manifest(session, state.storage, owner_id=OWNER, image="app", reference="v1")


def push(app: Flask, body: bytes, media_type: str, tag: str | None) -> str:
    state = get_state(app)
    with app.app_context():
        pushed = manifests.put_manifest(
            state.db.session(),
            state.storage,
            state.settings,
            owner_id=OWNER,
            owner_name="alice",
            image="app",
            reference=tag or str(digest_from(body)),
            body=io.BytesIO(body),
            content_type=media_type,
        )
    return pushed.digest


def digest_from(body: bytes) -> str:
    return str(descriptor(body, OCI_MANIFEST)["digest"])
