"""Signals the registry sends after a change is committed, so a host can fire webhooks.

Connect a receiver with ``image_pushed.connect(receiver)``; every signal is sent with the
app-independent sender ``"forge_container"`` and keyword arguments describing the change.
Receivers run in the request (or job) that made the change, after its transaction
committed, and never for a change that was refused or rolled back: keep them quick, or
enqueue work of their own. A receiver that raises is logged (logger
``forge_container.events``) and skipped: the change is stored, so the client still gets
its answer. Receivers are plain functions (not coroutines).

Two more report on operations rather than changes: ``gc_finished`` and ``quota_refused``
(a refusal, sent as the push is refused); the metrics count them.

Ids are the host's (``owner_id``, ``principal_id``); ``owner_name`` is the owner's name at
the time, ``image`` the image path without the owner (``tools/cli``), digests are strings
like ``"sha256:..."``.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from blinker import Namespace, Signal

SENDER = "forge_container"
logger = logging.getLogger(__name__)
_signals = Namespace()

#: A manifest was pushed: ``owner_id``, ``owner_name``, ``image``, ``digest``, ``media_type``,
#: ``tags`` (tuple, sorted: the tag of the reference and those of ``?tag=``; empty for a
#: push by digest alone), ``principal_id``.
image_pushed = _signals.signal("image-pushed")
#: A tag was removed (by DELETE, or by a cleanup rule): ``owner_id``, ``owner_name``,
#: ``image``, ``tag``, ``digest`` (of the manifest it pointed at), ``principal_id``
#: (``None`` for jobs).
tag_deleted = _signals.signal("tag-deleted")
#: A manifest and its tags were removed (by DELETE, a cleanup rule, or garbage collection of
#: untagged manifests): ``owner_id``, ``owner_name``, ``image``, ``digest``, ``tags`` (tuple,
#: sorted: the tags it had), ``principal_id`` (``None`` for jobs).
manifest_deleted = _signals.signal("manifest-deleted")
#: A blob upload finished or a blob was mounted into an image: ``owner_id``, ``owner_name``,
#: ``image``, ``digest``, ``size``, ``mounted`` (bool), ``principal_id``.
blob_uploaded = _signals.signal("blob-uploaded")
#: A garbage collection finished (not a dry run): ``blobs`` and ``bytes`` (of the blobs
#: removed), ``manifests``, ``links``, ``images`` (counts of what it removed).
gc_finished = _signals.signal("gc-finished")
#: A push was refused by an owner's quota (nothing was stored): ``owner_id``,
#: ``owner_name``, ``quota`` (``total_size``, ``versions`` or ``blob_size``), ``limit``,
#: ``requested`` (what the usage would have become).
quota_refused = _signals.signal("quota-refused")


def send(signal: Signal, **details: Any) -> None:
    """Send ``signal`` with ``details``; call it only after the transaction committed."""
    if signal.is_muted:
        return
    for receiver in signal.receivers_for(SENDER):
        try:
            if inspect.iscoroutinefunction(receiver):
                raise TypeError("coroutine receivers are not supported")
            receiver(SENDER, **details)
        except Exception:
            logger.exception("a receiver of the %r signal failed", getattr(signal, "name", ""))
