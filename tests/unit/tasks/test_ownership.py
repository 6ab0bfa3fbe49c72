"""The one ownership rule (tasks/tenancy/ownership.py), and the worker's last look before it writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.exports.spec import ErrorCode, ExportSpec, S3Location
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from tasks.tenancy.ownership import NotOwner, Writer, check_writable, export_refusal, may_delete, refusal
from tests.factories import export_spec
from tests.helpers import moto_buckets
from workers.errors import ExportError
from workers.jobs.export_pipeline import cut_and_upload
from workers.jobs.fencing import NO_JOB_FENCE

ALICE = {"owner": "alice", "writer": "alice"}
FOR_ALICE_BY_SVC = {"owner": "alice", "writer": "mma-svc"}


@pytest.mark.parametrize(
    ("existing", "writer", "allowed"),
    [
        (None, Writer("mallory"), True),  # a free key
        (ALICE, Writer("alice"), True),  # the owner replaces her own
        (ALICE, Writer("mallory"), False),  # someone else's
        ({}, Writer("alice"), False),  # no owner: a recording's segment, another system's file
        ({}, Writer("alice", service="mma-svc"), False),  # not even a service replaces what it did not write
        (FOR_ALICE_BY_SVC, Writer("bob", service="mma-svc"), True),  # the service replaces what it wrote
        (ALICE, Writer("bob", service="mma-svc"), False),  # but not what alice wrote herself
        (FOR_ALICE_BY_SVC, Writer("bob", service="other-svc"), False),
        (FOR_ALICE_BY_SVC, Writer("bob"), False),  # writer metadata means nothing to a user session
    ],
)
def test_who_may_write_a_key(existing: dict[str, str] | None, writer: Writer, allowed: bool) -> None:
    assert (refusal(existing, writer) is None) is allowed


def test_who_may_delete() -> None:
    assert may_delete(ALICE, "alice", False) and not may_delete(ALICE, "mallory", False)
    assert may_delete(ALICE, "ops", True)  # a service session moderates what the service wrote
    assert not may_delete({}, "ops", True) and not may_delete({}, "alice", False)


def test_metadata_names_owner_and_writer() -> None:
    assert Writer("alice").metadata == ALICE
    assert Writer("alice", service="mma-svc").metadata == FOR_ALICE_BY_SVC


@pytest.fixture
def store() -> Iterator[tuple[ObjectStore, Any]]:
    with moto_buckets("exports") as client:
        yield ObjectStore(Settings()), client


def spec_for(user: str, writer: str = "") -> ExportSpec:
    return export_spec(
        user=user,
        live_path="live/cam1",
        start_ms=0,
        duration_ms=1000,
        destination=S3Location("exports", "us-east-1", "clips"),
        video_name="a.mp4",
        writer=writer,
    )


def test_check_writable_heads_every_key(store: tuple[ObjectStore, Any]) -> None:
    objects, s3 = store
    s3.put_object(Bucket="exports", Key="clips/a.jpg", Body=b"x", Metadata=ALICE)
    check_writable(objects, "exports", ["clips/a.mp4", "clips/a.jpg"], None, Writer("alice"))
    with pytest.raises(NotOwner, match=r"clips/a\.jpg"):
        check_writable(objects, "exports", ["clips/a.mp4", "clips/a.jpg"], None, Writer("mallory"))
    assert export_refusal(objects, spec_for("alice")) is None
    assert "another user" in (export_refusal(objects, spec_for("mallory")) or "")


def test_a_key_just_looked_at_is_judged_from_that_look(
    store: tuple[ObjectStore, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker looks at its video key once, for its write condition and its ownership check:
    the check judges that look (even one that is stale by now) and HEADs only the other keys."""
    objects, s3 = store
    s3.put_object(Bucket="exports", Key="clips/a.mp4", Body=b"x", Metadata=ALICE)
    looked = objects.look("exports", "clips/a.mp4")
    heads: list[str] = []
    head = objects.head
    monkeypatch.setattr(
        objects,
        "head",
        lambda bucket, key, region=None, version_id=None: (
            heads.append(key) or head(bucket, key, region, version_id)
        ),
    )
    assert "another user" in (export_refusal(objects, spec_for("mallory"), {"clips/a.mp4": looked}) or "")
    assert export_refusal(objects, spec_for("mallory"), {"clips/a.mp4": None}) is None  # free when looked
    assert heads == ["clips/a.jpg"]  # the video never again; the poster only once the video passed


def test_worker_refuses_before_the_multipart_upload_starts(
    store: tuple[ObjectStore, Any], tmp_path: Path
) -> None:
    """The race: alice's export lands after mallory's job was admitted; mallory's worker must not
    start (or abort) a multipart upload on alice's key, and alice's object stays as it was."""
    objects, s3 = store
    s3.put_object(Bucket="exports", Key="clips/a.mp4", Body=b"alice's video", Metadata=ALICE)
    s3.create_multipart_upload(Bucket="exports", Key="clips/a.mp4")  # alice's upload still running
    running = s3.list_multipart_uploads(Bucket="exports")["Uploads"]
    with pytest.raises(ExportError) as refused:
        cut_and_upload(
            spec_for("mallory"),
            objects,
            Settings(),
            [],
            tmp_path / "clip.mp4",
            lambda s, f: None,
            False,
            fence=NO_JOB_FENCE,
        )
    assert refused.value.code == ErrorCode.AUTH
    assert s3.list_multipart_uploads(Bucket="exports")["Uploads"] == running
    assert s3.get_object(Bucket="exports", Key="clips/a.mp4")["Body"].read() == b"alice's video"
