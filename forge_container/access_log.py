"""Structured access logs: one line per ``/v2`` request to the logger ``forge_container.access``.

The WSGI wrapper (:mod:`forge_container.views.middleware`) keeps a :class:`RequestRecord` per
request; the view layer fills in who asked for what, and the line is written when the response
body is closed, so the duration and byte counts cover the whole transfer.

The message is ``key=value`` pairs; the same fields ride on the log record as ``access``
(a dict), which :class:`JsonFormatter` writes as one JSON object per line.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("forge_container.access")

#: The fields of a line, in order.
FIELDS = (
    "method",
    "route",
    "status",
    "duration_ms",
    "bytes_in",
    "bytes_out",
    "principal",
    "image",
    "reference",
    "address",
    "path",
)


@dataclass
class RequestRecord:
    """What is known of one registry request; filled in as it goes."""

    method: str
    path: str
    started: float
    #: The Flask endpoint (``forge_container.get_blob``), ``None`` when no route matched.
    endpoint: str | None = None
    status: int = 0
    #: ``Content-Length`` of the response, when it has one.
    content_length: int | None = None
    duration: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    principal: str | None = None
    principal_id: str | None = None
    #: ``owner/name`` of the image the route names.
    image: str | None = None
    #: The digest or tag the route names (or ``?digest=`` of an upload).
    reference: str | None = None
    address: str | None = None

    @property
    def route(self) -> str:
        """The endpoint without the blueprint's name; ``unmatched`` when no route matched."""
        if self.endpoint is None:
            return "unmatched"
        return self.endpoint.rpartition(".")[2]

    def fields(self) -> dict[str, Any]:
        """The log line's fields (``None`` for what the request did not have)."""
        return {
            "method": self.method,
            "route": self.route,
            "status": self.status,
            "duration_ms": round(self.duration * 1000, 3),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "principal": self.principal,
            "image": self.image,
            "reference": self.reference,
            "address": self.address,
            "path": self.path,
        }


def log_request(record: RequestRecord) -> None:
    """Write the request's line at ``INFO``."""
    if not logger.isEnabledFor(logging.INFO):
        return
    fields = record.fields()
    logger.info("%s", _KeyValues(fields), extra={"access": fields})


class _KeyValues:
    """``key=value`` pairs, formatted only when the line is emitted."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self._fields = fields

    def __str__(self) -> str:
        return " ".join(f"{key}={_value(value)}" for key, value in self._fields.items())


def _value(value: Any) -> str:
    if value is None:
        return "-"
    text = str(value)
    if not text or any(c in text for c in ' "=\\') or not text.isprintable():
        return json.dumps(text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: the time, the logger, and the access fields (or the
    message, for other records).

    ``logging.getLogger("forge_container.access").handlers[0].setFormatter(JsonFormatter())``,
    or ``"()": "forge_container.access_log.JsonFormatter"`` in a ``dictConfig``.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, self.datefmt),
            "logger": record.name,
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            entry.update(access)
        else:
            entry["level"] = record.levelname
            entry["message"] = record.getMessage()
        return json.dumps(entry, default=str)
