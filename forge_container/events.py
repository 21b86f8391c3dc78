"""Signals the registry sends after a change is committed, so a host can fire webhooks.

Connect a receiver with ``image_pushed.connect(receiver)``; every signal is sent with the
app-independent sender ``"forge_container"`` and keyword arguments describing the change.
Receivers run in the request (or job) that made the change, after its transaction
committed: keep them quick, or enqueue work of their own.
"""

from __future__ import annotations

from typing import Any

from blinker import Namespace

SENDER = "forge_container"
_signals = Namespace()

#: A manifest was pushed: ``owner_id``, ``owner_name``, ``image``, ``digest``, ``media_type``,
#: ``tags`` (tuple), ``principal_id``.
image_pushed = _signals.signal("image-pushed")
#: A tag was removed (by DELETE, or by a cleanup rule): ``owner_id``, ``owner_name``,
#: ``image``, ``tag``, ``digest``, ``principal_id`` (``None`` for jobs).
tag_deleted = _signals.signal("tag-deleted")
#: A manifest and its tags were removed: ``owner_id``, ``owner_name``, ``image``,
#: ``digest``, ``tags`` (tuple), ``principal_id`` (``None`` for jobs).
manifest_deleted = _signals.signal("manifest-deleted")
#: A blob upload finished or a blob was mounted into an image: ``owner_id``, ``owner_name``,
#: ``image``, ``digest``, ``size``, ``mounted`` (bool), ``principal_id``.
blob_uploaded = _signals.signal("blob-uploaded")


def send(signal: Any, **details: Any) -> None:
    """Send ``signal`` with ``details``; call it only after the transaction committed."""
    signal.send(SENDER, **details)
