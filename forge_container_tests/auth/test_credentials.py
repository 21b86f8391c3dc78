from __future__ import annotations

import base64

import pytest

from forge_container.auth.credentials import (
    BasicCredentials,
    BearerCredentials,
    MalformedAuthorization,
    parse_authorization,
)


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_no_header_means_anonymous() -> None:
    assert parse_authorization(None) is None
    assert parse_authorization("  ") is None


def test_basic_keeps_colons_in_the_password() -> None:
    assert parse_authorization(basic("alice:pa:ss")) == BasicCredentials("alice", "pa:ss")


def test_basic_scheme_is_case_insensitive_and_utf8() -> None:
    assert parse_authorization(basic("zoë:pw").replace("Basic", "basic")) == BasicCredentials(
        "zoë", "pw"
    )


def test_bearer() -> None:
    assert parse_authorization("Bearer abc.def") == BearerCredentials("abc.def")


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!",
        basic("no-colon"),
        basic(":pw"),
        "Bearer",
        "Bearer a b",
        "Digest x=1",
        "Basic " + "A" * 9000,
        basic("al\x00ice:pw"),
    ],
)
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(MalformedAuthorization):
        parse_authorization(header)
