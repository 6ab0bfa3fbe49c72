"""S3 itself refuses a stale or foreign completion: against moto's S3 server over HTTP, an
export's CompleteMultipartUpload carries If-None-Match: * for a key that was free when the attempt
looked (If-Match: <etag> to replace the owner's own earlier object). A completion that lands after
another writer put the key is refused with 412; the attempt fails as fenced off (LeaseLost) when
a newer attempt wrote it, as AUTH when someone else did. RESOURCED_S3_CONDITIONAL_WRITES=0 sends
no condition, for endpoints without them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scripts.samples import SampleSpec, generate_recording
from tasks.exports.leases import LeaseLost
from tasks.exports.spec import ErrorCode, ExportSpec
from tasks.platform.settings import Settings
from tasks.storage import MultipartUpload, ObjectStore, Uploaded, WriteCondition
from tests.factories import export_spec
from tests.helpers import upload_recording
from workers.errors import ExportError
from workers.jobs.export_pipeline import run_export
from workers.jobs.fencing import NO_JOB_FENCE, NoJobFence

pytestmark = pytest.mark.integration

PDT_MS = 1_700_000_000_000
NEWER = b"the newer attempt's video"


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory, s3: Any) -> str:
    rec = generate_recording(tmp_path_factory.mktemp("rec"), SampleSpec(seconds=4))
    upload_recording(s3, "archive", "live/conditional", rec)
    return "live/conditional"


class Fence(NoJobFence):
    """An attempt's fence that a newer attempt can take."""

    def __init__(self) -> None:
        self.lost = False

    def check(self) -> None:
        if self.lost:
            raise LeaseLost("a newer attempt holds the job")


def job(recording: str, name: str) -> ExportSpec:
    return export_spec(user="alice", live_path=recording, start_ms=PDT_MS, duration_ms=2000, video_name=name)


def settings_for(endpoint: str, tmp_path: Path, conditional: bool) -> Settings:
    return Settings(s3_endpoint_url=endpoint, work_dir=str(tmp_path), s3_conditional_writes=conditional)


@pytest.fixture
def completions(monkeypatch: pytest.MonkeyPatch) -> list[WriteCondition | None]:
    """The conditions the video completions carried, in order."""
    seen: list[WriteCondition | None] = []
    complete = MultipartUpload.complete

    def noted(upload: MultipartUpload, condition: WriteCondition | None = None) -> Uploaded:
        if upload.key.endswith(".mp4"):
            seen.append(condition)
        return complete(upload, condition)

    monkeypatch.setattr(MultipartUpload, "complete", noted)
    return seen


def land_before_completion(
    monkeypatch: pytest.MonkeyPatch, s3: Any, key: str, owner: str, fence: Fence | None
) -> None:
    """Between the attempt's last look and its CompleteMultipartUpload, another writer puts the key:
    a newer attempt of the same job (its fence is then lost, and its abort of our upload never
    reached S3), or another user."""
    complete = MultipartUpload.complete

    def frozen(upload: MultipartUpload, condition: WriteCondition | None = None) -> Uploaded:
        if upload.key == key:
            if fence is not None:
                fence.lost = True
            s3.put_object(Bucket="exports", Key=key, Body=NEWER, Metadata={"owner": owner, "writer": owner})
        return complete(upload, condition)

    monkeypatch.setattr(MultipartUpload, "complete", frozen)


@pytest.mark.parametrize("writer", ["newer attempt", "another user"])
def test_a_stale_completion_is_refused_by_s3(
    s3_endpoint: str,
    s3: Any,
    recording: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    writer: str,
) -> None:
    spec = job(recording, f"stale-{writer.split()[1]}.mp4")
    settings = settings_for(s3_endpoint, tmp_path, conditional=True)
    fence = Fence()
    newer = writer == "newer attempt"
    land_before_completion(
        monkeypatch, s3, spec.video_key, "alice" if newer else "bob", fence if newer else None
    )
    if newer:
        with pytest.raises(LeaseLost):
            run_export(spec, ObjectStore(settings), settings, fence=fence)
    else:
        with pytest.raises(ExportError) as refused:
            run_export(spec, ObjectStore(settings), settings, fence=fence)
        assert refused.value.code is ErrorCode.AUTH and spec.video_key in refused.value.message
    assert s3.get_object(Bucket="exports", Key=spec.video_key)["Body"].read() == NEWER
    assert ObjectStore(settings).pending_multipart_uploads("exports", spec.video_key) == []


def test_without_conditional_writes_the_old_path_still_works(
    s3_endpoint: str, s3: Any, recording: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off: no condition is sent, so the same stale completion lands (only the fence and the
    aborts recorded on the job stand in its way), and a plain export completes as before."""
    spec = job(recording, "unconditional.mp4")
    settings = settings_for(s3_endpoint, tmp_path, conditional=False)
    fence = Fence()
    land_before_completion(monkeypatch, s3, spec.video_key, "alice", fence)
    run_export(spec, ObjectStore(settings), settings, fence=fence)
    assert s3.get_object(Bucket="exports", Key=spec.video_key)["Body"].read()[4:8] == b"ftyp"
    monkeypatch.undo()
    again = run_export(
        job(recording, "unconditional-2.mp4"), ObjectStore(settings), settings, fence=NO_JOB_FENCE
    )
    assert again.exported_ms == 2000


def test_free_keys_are_completed_if_none_match_and_a_re_export_if_match(
    s3_endpoint: str, s3: Any, recording: str, tmp_path: Path, completions: list[WriteCondition | None]
) -> None:
    spec = job(recording, "reexported.mp4")
    settings = settings_for(s3_endpoint, tmp_path, conditional=True)
    first = run_export(spec, ObjectStore(settings), settings, fence=NO_JOB_FENCE)
    second = run_export(
        spec, ObjectStore(settings), settings, fence=NO_JOB_FENCE
    )  # the owner exports the same name again
    assert completions == [WriteCondition.free(), WriteCondition.replacing(first.version)]
    assert s3.head_object(Bucket="exports", Key=spec.video_key)["ETag"].strip('"') == second.version
    off = settings_for(s3_endpoint, tmp_path, conditional=False)
    run_export(spec, ObjectStore(off), off, fence=NO_JOB_FENCE)
    assert completions[-1] is None
