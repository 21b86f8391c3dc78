"""The ``s3`` driver: blobs as objects in an S3 bucket, uploads as multipart uploads.

Every path maps to the key ``<prefix>/<path>``. Finished blobs are plain objects. Files
under ``uploads/`` grow by :meth:`S3Driver.append` as described in
:mod:`forge_container.storage.s3_uploads`; only they may be appended to. A commit finishes
the multipart upload and copies the object to its content-addressed key inside S3.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterable, Iterator
from contextlib import suppress
from datetime import datetime
from typing import Any, BinaryIO

from botocore.exceptions import ClientError

from forge_container.config_storage import S3_MAX_PART_SIZE, S3Settings
from forge_container.storage.base import InvalidPath, PathNotFound, StorageError
from forge_container.storage.paths import UPLOADS, validate_path
from forge_container.storage.s3_client import (
    Clients,
    NoSuchUpload,
    error_code,
    open_object,
    s3_errors,
)
from forge_container.storage.s3_uploads import Appender, Part, UploadKeys, UploadState

_STATE_SUFFIX = ".state"


class S3Driver:
    """Objects under ``settings.prefix`` in ``settings.bucket``; the bucket must exist.

    The boto3 client is made on first use in each process, so the driver may be built
    before gunicorn forks. One writer per upload at a time is the caller's business (see
    :mod:`forge_container.registry.upload_claims`).
    """

    def __init__(self, settings: S3Settings) -> None:
        self._settings = settings
        self._bucket = settings.bucket
        self._root = f"{settings.prefix}/" if settings.prefix else ""
        self._clients = Clients(settings)

    def __repr__(self) -> str:
        return f"S3Driver(bucket={self._bucket!r}, prefix={self._settings.prefix!r})"

    @property
    def _client(self) -> Any:
        return self._clients.get()

    # -- reading ------------------------------------------------------------------------------

    def stat(self, path: str) -> int:
        """The size in bytes of the file at ``path``."""
        state = self._upload_state(path)
        if state is not None:
            return state[0].size
        return int(self._head(path)["ContentLength"])

    def exists(self, path: str) -> bool:
        """Whether a file is stored at ``path``."""
        try:
            self.stat(path)
        except PathNotFound:
            return False
        return True

    def modified(self, path: str) -> float:
        """When the file was last written: its object's, or its upload state's, date."""
        state = self._upload_state(path)
        if state is not None:
            return state[1]
        stamp: datetime = self._head(path)["LastModified"]
        return stamp.timestamp()

    def open_read(self, path: str, offset: int = 0) -> BinaryIO:
        """A ranged ``GetObject``, streamed; an upload in progress is completed first."""
        if offset < 0:
            raise ValueError(f"offset must not be negative, got {offset}")
        key = self._key(path)
        state = self._upload_state(path)
        if state is not None:
            if state[0].upload_id is None:
                if state[0].tail is None:
                    return io.BytesIO(b"")
                key = self._upload_keys(path).tail(state[0].tail)
            else:
                # The parts of an unfinished multipart upload cannot be read: finish it into
                # a plain object, which the next append continues from (see s3_uploads).
                self._complete(self._upload_keys(path), state[0])
                self._drop_hidden(self._upload_keys(path))
        return self._get(path, key, offset)

    def read_bytes(self, path: str) -> bytes:
        """The whole content of the file at ``path``."""
        with self.open_read(path) as stream:
            return stream.read()

    # -- writing ------------------------------------------------------------------------------

    def write_bytes(self, path: str, data: bytes) -> None:
        """One ``PutObject``: S3 shows the old or the new object, never a part."""
        key = self._key(path)
        with s3_errors("write", path):
            self._client.put_object(Bucket=self._bucket, Key=key, Body=data)
        if self._is_upload(path):
            state = self._upload_state(path)
            if state is not None:  # the plain object replaces the upload in progress
                self._drop_hidden(self._upload_keys(path), state[0])

    def append(self, path: str, chunks: Iterable[bytes]) -> int:
        """Stream ``chunks`` into the upload's multipart upload, then save its state.

        Only paths under ``uploads/`` grow this way. On failure the state is not rewritten:
        parts uploaded meanwhile are not listed in it, and the next append replaces them.
        """
        keys = self._upload_keys(path)
        loaded = self._upload_state(path)
        prior = loaded[0] if loaded is not None else None
        base = None if prior is not None else self._size_or_none(path)
        appender = Appender(self._client, self._bucket, keys, self._part_size, prior, base)
        try:
            for chunk in chunks:
                appender.write(chunk)
            state = appender.finish()
            if state is None:  # no bytes: the file stays as it was
                return prior.size if prior is not None else base or 0
            self._save_state(keys, state)
        except BaseException:
            appender.rollback()
            raise
        appender.saved()
        return state.size

    def commit(self, upload_path: str, blob_path: str) -> None:
        """Finish the upload and copy it to ``blob_path`` within S3, then drop the upload."""
        keys = self._upload_keys(upload_path)
        target = self._key(blob_path)
        loaded = self._upload_state(upload_path)
        state = loaded[0] if loaded is not None else None
        size = state.size if state is not None else int(self._head(upload_path)["ContentLength"])
        if self._size_or_none(blob_path) is None:
            source: str | None = keys.data
            if state is not None and state.upload_id is None:
                source = keys.tail(state.tail) if state.tail is not None else None
            elif state is not None:
                self._complete(keys, state)
                state = None  # its multipart upload is finished: nothing to abort
            self._copy(source, target, size, blob_path)
        self._drop_hidden(keys, state, data=True)

    def delete(self, path: str) -> bool:
        """Remove the file; an upload's multipart uploads are aborted, its tails deleted."""
        key = self._key(path)
        if not self._is_upload(path):
            if self._size_or_none(path) is None:
                return False
            with s3_errors("delete", path):
                self._client.delete_object(Bucket=self._bucket, Key=key)
            return True
        keys = self._upload_keys(path)
        existed = self.exists(path)
        self._abort_all(keys)
        self._drop_hidden(keys, data=True)
        return existed

    def list(self, prefix: str) -> Iterator[str]:
        """Every file under ``prefix``: objects, and uploads in progress by their state."""
        validate_path(prefix, allow_root=True)
        start = f"{self._root}{prefix}/" if prefix else self._root
        return self._walk(start)

    # -- the rest of the protocol -------------------------------------------------------------

    def local_path(self, path: str) -> str | None:
        """No local files: blobs are streamed or redirected to."""
        validate_path(path)
        return None

    @property
    def min_chunk_length(self) -> int:
        """The part size: a chunk that fills whole parts needs no tail round trip."""
        return self._part_size

    def redirect_url(self, path: str, *, expires: int) -> str | None:
        """A presigned ``GetObject`` URL, valid for ``expires`` seconds."""
        key = self._key(path)
        with s3_errors("presign", path):
            url: str = self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires
            )
        return url

    def check(self) -> None:
        """Reach the bucket, then write, read and delete a probe object."""
        probe = f"{self._root}.check-{secrets.token_hex(8)}"
        where = f"s3://{self._bucket}/{self._root}"
        try:
            with s3_errors("check", where):
                self._client.head_bucket(Bucket=self._bucket)
        except PathNotFound:
            raise StorageError(f"S3 bucket {self._bucket!r} does not exist") from None
        with s3_errors("check", where):
            self._client.put_object(Bucket=self._bucket, Key=probe, Body=b"ok")
            try:
                body = self._client.get_object(Bucket=self._bucket, Key=probe)["Body"]
                with body:
                    if body.read() != b"ok":
                        raise StorageError(f"S3 bucket {self._bucket!r} returns other bytes")
            finally:
                self._client.delete_object(Bucket=self._bucket, Key=probe)

    # -- helpers ------------------------------------------------------------------------------

    @property
    def _part_size(self) -> int:
        return self._settings.part_size

    def _key(self, path: str) -> str:
        return self._root + validate_path(path)

    @staticmethod
    def _is_upload(path: str) -> bool:
        return path.startswith(f"{UPLOADS}/")

    def _upload_keys(self, path: str) -> UploadKeys:
        key = self._key(path)
        if not self._is_upload(path):
            raise InvalidPath(path, f"the s3 driver keeps growing files under {UPLOADS}/ only")
        return UploadKeys(data=key, path=path)

    def _upload_state(self, path: str) -> tuple[UploadState, float] | None:
        """The saved state of an upload and when it was written; ``None`` without one."""
        key = self._key(path)
        if not self._is_upload(path):
            return None
        keys = UploadKeys(data=key, path=path)
        try:
            with s3_errors("read", path):
                reply = self._client.get_object(Bucket=self._bucket, Key=keys.state)
                with reply["Body"] as body:
                    data = body.read()
        except PathNotFound:
            return None
        stamp: datetime = reply["LastModified"]
        return UploadState.from_json(data, path), stamp.timestamp()

    def _save_state(self, keys: UploadKeys, state: UploadState) -> None:
        with s3_errors("write", keys.path):
            self._client.put_object(Bucket=self._bucket, Key=keys.state, Body=state.to_json())

    def _head(self, path: str) -> dict[str, Any]:
        key = self._key(path)
        with s3_errors("stat", path):
            reply: dict[str, Any] = self._client.head_object(Bucket=self._bucket, Key=key)
        return reply

    def _size_or_none(self, path: str) -> int | None:
        try:
            return int(self._head(path)["ContentLength"])
        except PathNotFound:
            return None

    def _get(self, path: str, key: str, offset: int) -> BinaryIO:
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": key}
        if offset:
            params["Range"] = f"bytes={offset}-"
        with s3_errors("read", path):
            try:
                reply = self._client.get_object(**params)
            except ClientError as exc:
                if not offset or error_code(exc) != "InvalidRange":
                    raise
                # At or past the end: nothing to read, if the object is there.
                self._client.head_object(Bucket=self._bucket, Key=key)
                return io.BytesIO(b"")
        return open_object(reply["Body"], path)

    def _complete(self, keys: UploadKeys, state: UploadState) -> None:
        """Finish the multipart upload: the tail becomes its last part (copied in S3)."""
        assert state.upload_id is not None
        parts = list(state.parts)
        try:
            with s3_errors("complete", keys.path):
                if state.tail is not None or not parts:
                    parts.append(self._last_part(keys, state, len(parts) + 1))
                self._client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=keys.data,
                    UploadId=state.upload_id,
                    MultipartUpload={
                        "Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]
                    },
                )
        except (NoSuchUpload, PathNotFound):
            # Completed by an earlier call that failed before dropping the state (its tails
            # may be gone too): the object holds the file then.
            if self._size_or_none(keys.path) != state.size:
                raise
        # The object now holds the whole file: without its state, it is read as it is.
        with s3_errors("write", keys.path):
            self._client.delete_object(Bucket=self._bucket, Key=keys.state)

    def _last_part(self, keys: UploadKeys, state: UploadState, number: int) -> Part:
        assert state.upload_id is not None
        common = {
            "Bucket": self._bucket,
            "Key": keys.data,
            "UploadId": state.upload_id,
            "PartNumber": number,
        }
        if state.tail is None:  # an empty file: one empty part
            etag = self._client.upload_part(**common, Body=b"")["ETag"]
        else:
            source = {"Bucket": self._bucket, "Key": keys.tail(state.tail)}
            etag = self._client.upload_part_copy(**common, CopySource=source)["CopyPartResult"][
                "ETag"
            ]
        return Part(number, etag, state.tail_size)

    def _copy(self, source: str | None, target: str, size: int, path: str) -> None:
        """Copy ``source`` (``None``: an empty file) to ``target`` within S3."""
        with s3_errors("copy", path):
            if source is None:
                self._client.put_object(Bucket=self._bucket, Key=target, Body=b"")
            elif size <= S3_MAX_PART_SIZE:
                self._client.copy_object(
                    Bucket=self._bucket,
                    Key=target,
                    CopySource={"Bucket": self._bucket, "Key": source},
                )
            else:  # CopyObject stops at 5 GiB: boto3's managed copy goes part by part
                self._client.copy({"Bucket": self._bucket, "Key": source}, self._bucket, target)

    def _drop_hidden(
        self, keys: UploadKeys, state: UploadState | None = None, *, data: bool = False
    ) -> None:
        """Delete an upload's state and tails (and its object with ``data``); abort the
        multipart upload ``state`` names."""
        if state is not None and state.upload_id is not None:
            with suppress(NoSuchUpload), s3_errors("abort", keys.path):
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=keys.data, UploadId=state.upload_id
                )
        directory = keys.data.rsplit("/", 1)[0] + "/"
        doomed = []
        with s3_errors("list", keys.path):
            for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=directory
            ):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key.startswith(keys.hidden) or (data and key == keys.data):
                        doomed.append(key)
        # The state goes first: without it, nothing refers to the tails any more.
        doomed.sort(key=lambda key: key != keys.state)
        with s3_errors("delete", keys.path):
            for key in doomed:
                self._client.delete_object(Bucket=self._bucket, Key=key)

    def _abort_all(self, keys: UploadKeys) -> None:
        """Abort every multipart upload on the upload's key, recorded in a state or not."""
        with s3_errors("abort", keys.path):
            for page in self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self._bucket, Prefix=keys.data
            ):
                for upload in page.get("Uploads", []):
                    if upload["Key"] == keys.data:
                        with suppress(NoSuchUpload), s3_errors("abort", keys.path):
                            self._client.abort_multipart_upload(
                                Bucket=self._bucket, Key=keys.data, UploadId=upload["UploadId"]
                            )

    def _walk(self, start: str) -> Iterator[str]:
        uploads: set[str] = set()  # upload files seen by their object or their state
        with s3_errors("list", start):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=start
            )
            for page in pages:
                for item in page.get("Contents", []):
                    path = self._path_of(item["Key"])
                    if path is None:
                        continue
                    if self._is_upload(path):
                        if path in uploads:
                            continue
                        uploads.add(path)
                    yield path

    def _path_of(self, key: str) -> str | None:
        """The path a listed key stands for (a state stands for its file); ``None`` if none."""
        relative = key[len(self._root) :]
        directory, _, name = relative.rpartition("/")
        if name.startswith(".") and name.endswith(_STATE_SUFFIX):
            relative = f"{directory}/{name[1 : -len(_STATE_SUFFIX)]}"
        try:
            return validate_path(relative)
        except InvalidPath:
            return None
