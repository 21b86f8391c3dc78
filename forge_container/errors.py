"""Error codes of the distribution spec, once, and the domain exceptions that carry them.

The service layer raises the exceptions below; the HTTP edge (``views/responses.py``) turns
any of them into ``{"errors": [{"code", "message", "detail"}]}`` with the code's status.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, ClassVar


class ErrorCode(enum.Enum):
    """``(HTTP status, default message)`` per code: the spec's 14 and Docker's extras."""

    BLOB_UNKNOWN = (404, "blob unknown to registry")
    BLOB_UPLOAD_INVALID = (400, "blob upload invalid")
    BLOB_UPLOAD_UNKNOWN = (404, "blob upload unknown to registry")
    DIGEST_INVALID = (400, "provided digest did not match uploaded content")
    MANIFEST_BLOB_UNKNOWN = (404, "manifest references a manifest or blob unknown to registry")
    MANIFEST_INVALID = (400, "manifest invalid")
    MANIFEST_UNKNOWN = (404, "manifest unknown to registry")
    NAME_INVALID = (400, "invalid repository name")
    NAME_UNKNOWN = (404, "repository name not known to registry")
    SIZE_INVALID = (400, "provided length did not match content length")
    UNAUTHORIZED = (401, "authentication required")
    DENIED = (403, "requested access to the resource is denied")
    UNSUPPORTED = (400, "the operation is unsupported")
    TOOMANYREQUESTS = (429, "too many requests")
    # Docker Registry HTTP API v2 additions
    PAGINATION_NUMBER_INVALID = (400, "invalid number of results requested")
    RANGE_INVALID = (416, "invalid content range")
    TAG_INVALID = (400, "manifest tag did not match URI")
    # Not in the spec: the one code for our own failures, as Distribution names it.
    UNKNOWN = (500, "unknown error")

    @property
    def status(self) -> int:
        return self.value[0]

    @property
    def message(self) -> str:
        return self.value[1]


class RegistryError(Exception):
    """Base of every error the registry reports to a client."""

    code: ClassVar[ErrorCode] = ErrorCode.UNKNOWN

    def __init__(
        self,
        message: str | None = None,
        *,
        detail: Any = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.code.message
        self.detail = detail
        self.status = status or self.code.status
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.message)


class BlobUnknown(RegistryError):
    code = ErrorCode.BLOB_UNKNOWN


class BlobUploadInvalid(RegistryError):
    code = ErrorCode.BLOB_UPLOAD_INVALID


class BlobUploadUnknown(RegistryError):
    code = ErrorCode.BLOB_UPLOAD_UNKNOWN


class DigestInvalid(RegistryError):
    code = ErrorCode.DIGEST_INVALID


class ManifestBlobUnknown(RegistryError):
    code = ErrorCode.MANIFEST_BLOB_UNKNOWN


class ManifestInvalid(RegistryError):
    code = ErrorCode.MANIFEST_INVALID


class ManifestUnknown(RegistryError):
    code = ErrorCode.MANIFEST_UNKNOWN


class NameInvalid(RegistryError):
    code = ErrorCode.NAME_INVALID


class NameUnknown(RegistryError):
    code = ErrorCode.NAME_UNKNOWN


class SizeInvalid(RegistryError):
    code = ErrorCode.SIZE_INVALID


class Unauthorized(RegistryError):
    """The caller must (re-)authenticate; ``scopes`` go into the Bearer challenge."""

    code = ErrorCode.UNAUTHORIZED

    def __init__(
        self,
        message: str | None = None,
        *,
        scopes: tuple[str, ...] = (),
        error: str | None = None,
        basic: bool = False,
        detail: Any = None,
    ) -> None:
        super().__init__(message, detail=detail)
        self.scopes = scopes
        self.error = error
        self.basic = basic


class Denied(RegistryError):
    code = ErrorCode.DENIED


class Unsupported(RegistryError):
    code = ErrorCode.UNSUPPORTED


class TooManyRequests(RegistryError):
    code = ErrorCode.TOOMANYREQUESTS

    def __init__(self, message: str | None = None, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = max(1, retry_after)


class PaginationNumberInvalid(RegistryError):
    code = ErrorCode.PAGINATION_NUMBER_INVALID


class TagInvalid(RegistryError):
    code = ErrorCode.TAG_INVALID


class RangeInvalid(RegistryError):
    """A ``Range`` the blob cannot satisfy (416, with ``Content-Range: bytes */<size>``)."""

    code = ErrorCode.RANGE_INVALID


class TokenRequestInvalid(RegistryError):
    """A malformed request to the token endpoint, with its OAuth2 error name."""

    code = ErrorCode.UNSUPPORTED

    def __init__(self, message: str, *, oauth_error: str = "invalid_request") -> None:
        super().__init__(message, detail={"error": oauth_error})
        self.oauth_error = oauth_error


class Unknown(RegistryError):
    """Our own failure; the client sees a 500 with this code, never a stack trace."""

    code = ErrorCode.UNKNOWN
