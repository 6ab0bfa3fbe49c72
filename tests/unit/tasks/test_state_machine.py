"""The export job's states, leases and destination claims (fakeredis running the real Lua) against
a simple Python model, driven by Hypothesis: identical concurrent admissions, another user's
admissions on the same keys, attempts that start, freeze (their lease expires), resume with a
stale token, the reaper requeueing or giving up, cancels, and Redis losing every key or one
job's keys. After every step the records and claims must be what the model says, and:
at most one attempt completes per admission; a stale token never changes anything; no claim
is held by another user's job; no claim outlives its job; every state is one of the enum."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import fakeredis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, MultipleResults, RuleBasedStateMachine, invariant, multiple, rule

from tasks.exports.leases import AttemptLease, LeaseLost
from tasks.exports.spec import ErrorCode, ExportResult, ExportSpec
from tasks.exports.states import JobState
from tasks.exports.store import ExportJobStore
from tasks.exports.uploads import abort_recorded_uploads
from tasks.platform import keys
from tasks.tenancy.ownership import claim_holders, destination_claim
from tests.factories import store_spec
from workers.runtime.reaper import reap

MAX_ATTEMPTS = 2
RESULT = ExportResult("dst", "us-east-1", "x", "x/clip.mp4", "x/clip.jpg", "v1", 5000, 0, 10, "h264")


def spec(user: str, start: int, folder: str) -> ExportSpec:
    return store_spec(user, start, folder, duration_ms=1000)


# Two of Alice's exports and one of Mallory's write the same keys; Mallory's other one does not.
SPECS = [spec("alice", 1000, "shared"), spec("alice", 2000, "shared"), spec("mallory", 3000, "shared")]
SPECS.append(spec("mallory", 4000, "elsewhere"))
BY_ID = {s.job_id: s for s in SPECS}
CLAIM_KEYS = sorted({(s.destination.bucket, k) for s in SPECS for k in (s.video_key, s.image_key)})


@dataclass
class Job:
    state: str
    token: str
    admission: str
    attempts: int = 1
    leased: bool = False
    reported: bool = False
    uploads: set[str] = field(default_factory=set)


@dataclass
class Claim:
    owner: str
    holders: set[str]


class AbortLog:
    """The object store the reaper and cancel abort uploads through: records each abort, and
    checks that the job was not yet answered as failed when its upload was aborted."""

    def __init__(self, machine: JobStates) -> None:
        self.machine, self.aborted = machine, set[str]()

    def abort_upload(self, bucket: str, key: str, upload_id: str, region: str | None = None) -> None:
        job_id = self.machine.upload_owner[upload_id]
        record = self.machine.jobs.get(job_id)
        assert record is None or record.state is not JobState.FAILED, "aborted after the client was told 6"
        self.aborted.add(upload_id)


class JobStates(RuleBasedStateMachine):
    attempts = Bundle("attempts")  # (job_id, token): every token ever handed to an attempt

    def __init__(self) -> None:
        super().__init__()
        self.jobs = ExportJobStore(fakeredis.FakeRedis(), job_ttl_s=3600)
        self.model: dict[str, Job] = {}
        self.claims: dict[tuple[str, str], Claim] = {}
        self.lost: set[str] = set()  # jobs whose record Redis lost while they held claims
        self.completed: dict[tuple[str, str], int] = {}  # (job, admission) -> results written
        self.upload_owner: dict[str, str] = {}
        self.store = AbortLog(self)
        self.sent: list[tuple[str, str]] = []
        self.uploads = 0
        self.issued: set[tuple[str, str]] = set()  # every (job, token) an attempt was ever given

    # -- the model's expectations ------------------------------------------------------------

    def _refused(self, job: ExportSpec) -> bool:
        for key in (job.video_key, job.image_key):
            claim = self.claims.get((job.destination.bucket, key))
            if claim is not None and claim.owner != job.user:
                return True
        return False

    def _give_back(self, job_id: str) -> None:
        job = BY_ID[job_id]
        for key in (job.video_key, job.image_key):
            claim = self.claims.get((job.destination.bucket, key))
            if claim is not None:
                claim.holders.discard(job_id)
                if not claim.holders:
                    del self.claims[(job.destination.bucket, key)]

    def _current(self, job_id: str, token: str) -> Job | None:
        job = self.model.get(job_id)
        return job if job is not None and job.token == token else None

    def _snapshot(self) -> dict[bytes, Any]:
        client = self.jobs.redis
        found: dict[bytes, Any] = {}
        for name in client.keys("*"):
            kind = client.type(name)
            if kind == b"hash":
                found[name] = client.hgetall(name)
            elif kind == b"zset":
                found[name] = client.zrange(name, 0, -1, withscores=True)
            elif kind == b"string":
                found[name] = client.get(name)
        return found

    # -- rules ------------------------------------------------------------------------------

    def _admit(self, which: ExportSpec) -> str:
        """One admission, checked against the model (which follows it)."""
        job = self.model.get(which.job_id)
        admitted = self.jobs.admit(which, "export.copy", 10, 10)
        if job is not None and (job.state != "failed" or not job.reported):
            assert (admitted.outcome, admitted.detail) == ("exists", job.state)
            if job.state == "failed":
                job.reported = True  # the failure is answered once, then a request starts afresh
        elif self._refused(which):
            assert admitted.outcome == "forbidden"
        else:
            assert admitted.outcome == "created", admitted
            record = self.jobs.get(which.job_id)
            assert record is not None and record.token == admitted.detail
            self.issued.add((which.job_id, admitted.detail))
            uploads = job.uploads if job is not None else set()
            self.model[which.job_id] = Job("queued", admitted.detail, record.admission, uploads=uploads)
            self.lost.discard(which.job_id)
            for key in (which.video_key, which.image_key):
                claim = self.claims.setdefault((which.destination.bucket, key), Claim(which.user, set()))
                claim.holders.add(which.job_id)
        return admitted.outcome

    @rule(target=attempts, which=st.sampled_from(SPECS))
    def admit_twice_at_once(self, which: ExportSpec) -> tuple[str, str]:
        """Two identical requests: the second finds what the first made, and changes no claim."""
        before = self._snapshot()
        if self._admit(which) == "created":
            before = self._snapshot()
            assert self._admit(which) == "exists"
            assert self._snapshot() == before
        else:
            self._admit(which)
        current = self.model.get(which.job_id)
        return (which.job_id, current.token if current is not None else "never-admitted")

    @rule(which=st.sampled_from(SPECS))
    def start_current(self, which: ExportSpec) -> None:
        """The job's current message reaches a worker."""
        job = self.model.get(which.job_id)
        self.start((which.job_id, job.token if job is not None else "never-admitted"))

    @rule(attempt=attempts)
    def start(self, attempt: tuple[str, str]) -> None:
        """Any message ever sent (a redelivery, a stale one) reaches a worker."""
        job_id, token = attempt
        job = self.model.get(job_id)
        before = self._snapshot()
        outcome = self.jobs.claim(job_id, token, "w", lease_ttl_s=30)
        if job is None:
            assert outcome == "missing"
        elif job.token != token:
            assert outcome == "stale"
        elif job.state == "running":
            assert outcome == "held"
        elif job.state in ("queued", "parked"):
            assert outcome == "running"
            job.state, job.leased = "running", True
            return
        else:
            assert outcome == job.state
        assert self._snapshot() == before  # nothing but a start changes anything

    @rule(which=st.sampled_from(SPECS))
    def freeze(self, which: ExportSpec) -> None:
        """The attempt's worker froze: its lease ran out (the TTL, advanced)."""
        self.jobs.redis.delete(keys.export_lease(which.job_id))
        job = self.model.get(which.job_id)
        if job is not None:
            job.leased = False

    @rule(attempt=attempts, what=st.sampled_from(["renew", "progress", "record_upload", "check", "pin"]))
    def attempt_acts(self, attempt: tuple[str, str], what: str) -> None:
        job_id, token = attempt
        job = self._current(job_id, token)
        allowed = job is not None and job.state == "running"
        lease = AttemptLease(self.jobs, job_id, token, 30)
        before = self._snapshot()
        if what == "renew":
            done = lease.renew()
            if done and job is not None:
                job.leased = True
        elif what == "progress":
            done = self.jobs.progress(job_id, token, 0.5, "remuxing")
        elif what == "pin":
            done = self.jobs.pin_view(job_id, token, 5.0) is not None
        elif what == "check":
            try:
                lease.check()
                done = True
            except LeaseLost:
                done = False
        else:
            self.uploads += 1
            upload_id = f"upload-{self.uploads}"
            self.upload_owner[upload_id] = job_id
            try:
                lease.record_upload("dst", BY_ID[job_id].video_key, "us-east-1", upload_id, 3600)
                done = True
                assert job is not None
                job.uploads.add(upload_id)
            except LeaseLost:
                done = False
        assert done == allowed, (what, job)
        if not done:
            assert self._snapshot() == before  # a stale token changes nothing

    @rule(attempt=attempts, ok=st.booleans())
    def end(self, attempt: tuple[str, str], ok: bool) -> None:
        job_id, token = attempt
        job = self._current(job_id, token)
        before = self._snapshot()
        if ok:
            done = self.jobs.finish(job_id, token, RESULT)
        else:
            done = self.jobs.fail(job_id, token, ErrorCode.NO_MEDIA, "nothing there")
        assert done == (job is not None and job.state in ("queued", "running", "parked"))
        if not done:
            assert self._snapshot() == before
            return
        assert job is not None
        job.state, job.leased, job.reported = ("done" if ok else "failed"), False, False
        self._give_back(job_id)
        if ok:
            self.completed[(job_id, job.admission)] = self.completed.get((job_id, job.admission), 0) + 1

    @rule(attempt=attempts)
    def park(self, attempt: tuple[str, str]) -> None:
        job_id, token = attempt
        job = self._current(job_id, token)
        done = self.jobs.park(job_id, token, keep_s=3600)
        assert done == (job is not None and job.state == "running")
        if done and job is not None:
            job.state, job.leased = "parked", False

    @rule(target=attempts)
    def reaper(self) -> MultipleResults[tuple[str, str]]:
        self.sent.clear()
        lost = {
            job_id: job for job_id, job in self.model.items() if job.state == "running" and not job.leased
        }
        reap(
            self.jobs,
            self.jobs.redis,
            lambda job_id, token, queue: self.sent.append((job_id, token)),
            lost_queued_s=1e9,
            max_attempts=MAX_ATTEMPTS,
            uploads=self.store,  # type: ignore[arg-type]
        )
        sent = dict(self.sent)
        for job_id, job in lost.items():
            if job.attempts >= MAX_ATTEMPTS:
                assert job_id not in sent
                assert job.uploads <= self.store.aborted  # every recorded upload, before the 6
                job.state, job.uploads, job.reported = "failed", set(), False
                self._give_back(job_id)
            else:
                job.state, job.token, job.attempts = "queued", sent[job_id], job.attempts + 1
                self.issued.add((job_id, job.token))
        assert set(sent) <= set(lost)
        return multiple(*self.sent)

    @rule(which=st.sampled_from(SPECS))
    def cancel(self, which: ExportSpec) -> None:
        job = self.model.get(which.job_id)
        outcome, record = self.jobs.cancel(which.job_id, hold_s=60)
        if job is None:
            assert (outcome, record) == ("missing", None)
        elif job.state in ("queued", "running", "parked"):
            assert outcome == "cancelled" and record is not None and record.state is JobState.CANCELLED
            job.state, job.leased = "cancelled", False
            self._give_back(which.job_id)
            abort_recorded_uploads(self.jobs, self.store, which.job_id)  # type: ignore[arg-type]
            assert job.uploads <= self.store.aborted
            job.uploads = set()
        else:
            assert outcome == "ended"

    @rule(roll=st.integers(0, 7))
    def redis_loses_everything(self, roll: int) -> None:
        """Now and then (one roll in eight: it ends every story the other rules were telling)."""
        if roll:
            return
        self.jobs.redis.flushall()
        self.model.clear()
        self.claims.clear()
        self.lost.clear()

    @rule(which=st.sampled_from(SPECS), roll=st.integers(0, 3))
    def redis_loses_one_job(self, which: ExportSpec, roll: int) -> None:
        if roll:
            return
        client = self.jobs.redis
        client.delete(
            keys.export_job(which.job_id), keys.export_lease(which.job_id), keys.export_uploads(which.job_id)
        )
        if self.model.pop(which.job_id, None) is not None:
            self.lost.add(which.job_id)

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def records_are_the_model(self) -> None:
        for job_id in BY_ID:
            record = self.jobs.get(job_id)
            job = self.model.get(job_id)
            if job is None:
                assert record is None
                continue
            assert record is not None and record.state in set(JobState)
            assert (record.state.value, record.token) == (job.state, job.token)
            assert self.jobs.lease_held(job_id) == job.leased

    @invariant()
    def a_stale_token_never_changes_anything(self) -> None:
        """Every token ever handed out that is not its job's current one: each thing an attempt
        does is refused and leaves every key as it was."""
        for job_id, token in sorted(self.issued):
            if self._current(job_id, token) is not None:
                continue
            before = self._snapshot()
            lease = AttemptLease(self.jobs, job_id, token, 30)
            assert self.jobs.claim(job_id, token, "w") in ("stale", "missing")
            assert not lease.renew() and not lease.holds()
            try:
                lease.record_upload("dst", BY_ID[job_id].video_key, "us-east-1", "stale-upload", 3600)
                raise AssertionError("a stale attempt recorded an upload")
            except LeaseLost:
                pass
            assert not self.jobs.progress(job_id, token, 0.7, "uploading")
            assert self.jobs.pin_view(job_id, token, 9.0) is None
            assert not self.jobs.park(job_id, token, keep_s=3600)
            assert not self.jobs.release(job_id, token)
            assert not self.jobs.requeue(job_id, token)
            assert not self.jobs.finish(job_id, token, RESULT)
            assert not self.jobs.fail(job_id, token, ErrorCode.FAILED, "stale")
            assert self._snapshot() == before

    @invariant()
    def at_most_one_attempt_completes_per_admission(self) -> None:
        assert all(count <= 1 for count in self.completed.values())

    @invariant()
    def claims_are_held_by_their_owners_active_jobs(self) -> None:
        for bucket, key in CLAIM_KEYS:
            claim = self.claims.get((bucket, key))
            holders = set(claim_holders(self.jobs.redis, bucket, key))
            if claim is None:
                assert holders == set() and destination_claim(self.jobs.redis, bucket, key) is None
                continue
            stored = destination_claim(self.jobs.redis, bucket, key)
            assert stored is not None and stored["owner"] == claim.owner
            assert holders == claim.holders
            for job_id in holders:
                assert BY_ID[job_id].user == claim.owner  # never another user's job
                job = self.model.get(job_id)
                # no claim outlives its job (one whose record Redis lost holds it until re-admitted)
                assert job_id in self.lost or (
                    job is not None and job.state in ("queued", "running", "parked")
                )


TestJobStates = JobStates.TestCase
TestJobStates.settings = settings(max_examples=40, stateful_step_count=35, deadline=None)
