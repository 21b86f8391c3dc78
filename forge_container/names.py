"""The spec's grammar for repository names, tags and references (pure functions)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
#: Clients refuse longer names (the spec's note); so do we, before touching storage.
MAX_NAME_LENGTH = 255


class InvalidName(ValueError):
    """A repository name outside the spec grammar."""


@dataclass(frozen=True)
class ImageName:
    """``<owner>/<image>``: the owner is the first component, the image may nest."""

    owner: str
    image: str

    def __str__(self) -> str:
        return f"{self.owner}/{self.image}"


def is_valid_name(name: str) -> bool:
    """Whether ``name`` is a repository name by the spec grammar."""
    return len(name) <= MAX_NAME_LENGTH and NAME_RE.fullmatch(name) is not None


def parse_name(name: str) -> ImageName:
    """Split a full repository name into owner and image, or raise :class:`InvalidName`.

    A name needs an owner and at least one image component (``alice/app``).
    """
    if not is_valid_name(name):
        raise InvalidName(f"invalid repository name {name!r}")
    owner, sep, image = name.partition("/")
    if not sep:
        raise InvalidName(f"repository name {name!r} needs an owner: <owner>/<image>")
    return ImageName(owner=owner, image=image)


def is_valid_tag(tag: str) -> bool:
    """Whether ``tag`` is a tag by the spec grammar (at most 128 characters)."""
    return TAG_RE.fullmatch(tag) is not None
