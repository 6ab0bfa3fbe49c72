"""A conditional completion that S3 refuses because the first try already completed it (botocore
retried after the answer was lost) is this export's own object, not a foreign writer's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from scripts.samples import SampleSpec, generate_recording
from tasks.exports.spec import ErrorCode
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from tests.factories import export_spec
from tests.helpers import moto_buckets, upload_recording
from tests.media import frame_indices
from workers.errors import ExportError
from workers.jobs.export_pipeline import run_export
from workers.jobs.fencing import NO_JOB_FENCE

PDT_MS = 1_700_000_000_000


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[Any]:
    with moto_buckets("archive", "exports") as client:
        upload_recording(
            client, "archive", "live/cam", generate_recording(tmp_path / "rec", SampleSpec(seconds=4))
        )
        yield client


def answer_lost(client: Any, monkeypatch: pytest.MonkeyPatch, then_land: bytes | None = None) -> None:
    """The video's completion succeeds but its answer is lost; the retry is refused with 412
    (or: another writer lands between the two, when `then_land` is given)."""
    complete = client.complete_multipart_upload

    def completed_then_refused(**kwargs: Any) -> Any:
        if kwargs["Key"].endswith(".mp4"):
            complete(**kwargs)
            if then_land is not None:
                client.put_object(
                    Bucket="exports", Key=kwargs["Key"], Body=then_land, Metadata={"owner": "bob"}
                )
            raise ClientError(
                {"Error": {"Code": "PreconditionFailed"}, "ResponseMetadata": {"HTTPStatusCode": 412}},
                "CompleteMultipartUpload",
            )
        return complete(**kwargs)

    monkeypatch.setattr(client, "complete_multipart_upload", completed_then_refused)


def test_a_refused_retry_of_our_own_completion_is_the_answer(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(work_dir=str(tmp_path))
    store = ObjectStore(settings)
    answer_lost(store.client("us-east-1"), monkeypatch)
    spec = export_spec(user="alice", start_ms=PDT_MS, duration_ms=2000)
    result = run_export(spec, store, settings, fence=NO_JOB_FENCE)
    head = s3.head_object(Bucket="exports", Key=spec.video_key)
    assert result.version == head["ETag"].strip('"')
    s3.download_file("exports", spec.video_key, str(tmp_path / "got.mp4"))
    assert frame_indices(tmp_path / "got.mp4") == list(range(50))


def test_a_refusal_over_another_writers_object_is_auth(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(work_dir=str(tmp_path))
    store = ObjectStore(settings)
    answer_lost(store.client("us-east-1"), monkeypatch, then_land=b"bob's")
    spec = export_spec(user="alice", start_ms=PDT_MS, duration_ms=2000)
    with pytest.raises(ExportError) as refused:
        run_export(spec, store, settings, fence=NO_JOB_FENCE)
    assert refused.value.code is ErrorCode.AUTH
