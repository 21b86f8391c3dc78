from __future__ import annotations

import pytest

from forge_container.names import ImageName, InvalidName, is_valid_tag, parse_name


@pytest.mark.parametrize(
    ("name", "owner", "image"),
    [
        ("alice/app", "alice", "app"),
        ("alice/tools/cli", "alice", "tools/cli"),
        ("org-1/a__b/c.d", "org-1", "a__b/c.d"),
        ("a/b---c", "a", "b---c"),
    ],
)
def test_valid_names_split_into_owner_and_image(name: str, owner: str, image: str) -> None:
    assert parse_name(name) == ImageName(owner, image)
    assert str(parse_name(name)) == name


@pytest.mark.parametrize(
    "name",
    [
        "alice",
        "Alice/app",
        "alice/App",
        "alice//app",
        "alice/app/",
        "/alice/app",
        "alice/-app",
        "alice/app.",
        "alice/a___b",
        "../etc/passwd",
        "alice/" + "a" * 300,
        "",
    ],
)
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidName):
        parse_name(name)


@pytest.mark.parametrize("tag", ["latest", "v1.0", "_x", "A" * 128, "1-2_3.4"])
def test_valid_tags(tag: str) -> None:
    assert is_valid_tag(tag)


@pytest.mark.parametrize("tag", ["", ".x", "-x", "a" * 129, "a/b", "a:b", "ümlaut"])
def test_invalid_tags(tag: str) -> None:
    assert not is_valid_tag(tag)
