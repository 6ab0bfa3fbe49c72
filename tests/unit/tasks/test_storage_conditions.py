"""Conditional writes at the storage layer: S3's refusals become WriteConflict, and the condition
an ObjectStore hands out follows what the key held and the setting."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tasks.platform.settings import Settings
from tasks.storage import ObjectStore, StorageError, WriteCondition, WriteConflict
from tasks.storage.errors import translate
from tests.helpers import moto_buckets


@pytest.fixture
def s3() -> Iterator[Any]:
    with moto_buckets("exports") as client:
        yield client


@pytest.mark.parametrize(
    ("code", "status"), [("PreconditionFailed", 412), ("ConditionalRequestConflict", 409)]
)
def test_refused_conditional_writes_are_write_conflicts(code: str, status: int) -> None:
    error = ClientError(
        {"Error": {"Code": code, "Message": "no"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "CompleteMultipartUpload",
    )
    assert isinstance(translate(error, "b", "k"), WriteConflict)
    other = ClientError(
        {"Error": {"Code": "InvalidPart"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
        "CompleteMultipartUpload",
    )
    assert not isinstance(translate(other, "b", "k"), WriteConflict)


def test_s3_refuses_a_write_whose_condition_no_longer_holds(s3: Any) -> None:
    store = ObjectStore(Settings())
    assert store.write_condition(store.look("exports", "k")) == WriteCondition.free()
    first = store.put_bytes("exports", "k", b"1", "text/plain", condition=WriteCondition.free())
    with pytest.raises(WriteConflict):
        store.put_bytes("exports", "k", b"2", "text/plain", condition=WriteCondition.free())
    seen = store.write_condition(store.look("exports", "k"))
    assert seen == WriteCondition.replacing(first.etag)
    store.put_bytes("exports", "k", b"2", "text/plain", condition=seen)  # the known version: replaced
    with pytest.raises(WriteConflict):  # the same condition again: that version is gone
        store.put_bytes("exports", "k", b"3", "text/plain", condition=seen)
    upload = store.start_multipart("exports", "k", "text/plain")
    upload.upload_part(1, b"4")
    with pytest.raises(WriteConflict):
        upload.complete(WriteCondition.free())
    upload.abort()
    assert s3.get_object(Bucket="exports", Key="k")["Body"].read() == b"2"


def test_the_setting_turns_conditions_off(s3: Any) -> None:
    store = ObjectStore(Settings(s3_conditional_writes=False))
    store.put_bytes("exports", "k", b"1", "text/plain")
    assert store.write_condition(store.look("exports", "k")) is None
    assert Settings.from_env({"RESOURCED_S3_CONDITIONAL_WRITES": "0"}).s3_conditional_writes is False
    assert Settings.from_env({}).s3_conditional_writes is True
    assert issubclass(WriteConflict, StorageError)
