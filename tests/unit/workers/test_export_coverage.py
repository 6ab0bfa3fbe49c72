"""The worker tells the job record how much media the range really holds, once indexed, so
TimeWait is estimated on that and not on the requested Duration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.samples import SampleSpec, generate_recording
from tasks.exports.spec import S3Location
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from tests.factories import export_spec
from tests.helpers import moto_buckets, upload_recording
from workers.archive.model import Segment
from workers.jobs.export_pipeline import covered_seconds, run_export
from workers.jobs.fencing import NO_JOB_FENCE

PDT_MS = 1_700_000_000_000


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[Any]:
    with moto_buckets("archive", "exports") as client:
        recording = generate_recording(tmp_path / "rec", SampleSpec(seconds=6))
        upload_recording(client, "archive", "live/cam", recording)
        yield client


def test_a_long_request_over_a_short_recording_reports_the_covered_seconds(s3: Any, tmp_path: Path) -> None:
    three_hours = export_spec(
        start_ms=PDT_MS + 4000,
        duration_ms=3 * 3600 * 1000,
        destination=S3Location("exports", "us-east-1", "out/job"),
    )
    covered: list[float] = []

    def indexed(found: list[Segment]) -> list[Segment]:
        covered.append(covered_seconds(three_hours, found))
        return found

    settings = Settings(work_dir=str(tmp_path))
    result = run_export(three_hours, ObjectStore(settings), settings, indexed=indexed, fence=NO_JOB_FENCE)
    assert covered == [pytest.approx(2.0, abs=0.05)]  # seconds 4..6 of a 6 s recording
    assert abs(result.exported_ms - covered[0] * 1000) < 100
