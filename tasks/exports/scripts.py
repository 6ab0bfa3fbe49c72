"""The export job's transitions (tasks/exports/states.py), each one Lua script Redis runs atomically.

Every script takes every key it touches in KEYS: a job's record, lease and uploads share the
`{job_id}` hash tag (one Redis Cluster slot). Each attempt of a job holds a RANDOM token minted
by whoever starts it (admission, a requeue); the record stores the current one and every script
an attempt runs checks that exact token first, so an attempt that was frozen, redelivered, or
whose record Redis lost and re-created can never renew, progress, record an upload or end the
job: a counter could repeat after a lost record, a random token cannot. The attempt count is
kept only for the attempts cap. tasks/exports/store.py runs these scripts.

Destination claims (KEYS after the job's own) are JSON strings {owner, writer, holders}: the
holders are the job ids writing the key, each with the admission token it holds the claim by,
so a claim is given back by its holder only (compare-and-delete by identity).
"""

# Shared Lua: whether a claim (decoded) refuses `owner`/`service` (tasks/tenancy/ownership.py's
# `refusal`, the same rule), and giving back one job's hold on claims KEYS[first..last]. A claim
# with no holder left is deleted; one still held by another job of the same owner stays.
_CLAIM_HELPERS = """
local function refuses(claim, owner, service)
  if type(claim) ~= 'table' then return true end
  if claim.owner == owner then return false end
  if service ~= '' and claim.writer == service then return false end
  return true
end
local function read_claim(name)
  local raw = redis.call('GET', name)
  if not raw then return nil end
  local ok, claim = pcall(cjson.decode, raw)
  if not ok or type(claim) ~= 'table' then return 'unreadable' end
  if type(claim.holders) ~= 'table' then claim.holders = {} end
  return claim
end
local function give_back(first, last, job, admission)
  for i = first, last do
    local claim = read_claim(KEYS[i])
    if type(claim) == 'table' and claim.holders[job] == admission then
      claim.holders[job] = nil
      if next(claim.holders) == nil then
        redis.call('DEL', KEYS[i])
      else
        redis.call('SET', KEYS[i], cjson.encode(claim), 'KEEPTTL')
      end
    end
  end
end
"""

# Admit a new job, or afresh after a failure answered once, unless a destination key is claimed
# by another user or a limit is reached; claim the destination keys for it in the same step.
# KEYS: 1 record, 2 lease, 3 active (all), 4 active of the user, 5 registry (all), 6 registry of
# the user, 7..6+n claims (n = ARGV[15]), then the records of the user's active jobs (ARGV[17..]
# their ids), so expired ones free their slot. A job that exists answers 'exists' and touches no
# claim: identical requests converge on one job and one claim.
# ARGV: 1 now, 2 spec, 3 user, 4 max active, 5 max per user, 6 record ttl, 7 job id, 8 queue,
# 9 media s, 10 estimate s, 11 attempt token, 12 admission token, 13 service writer, 14 claim
# ttl, 15 n claims, 16 registry cap, 17.. the user's active job ids (same order as their KEYS).
ADMIT = (
    _CLAIM_HELPERS
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'failed' then return {'exists', state} end
if state == 'failed' and redis.call('HGET', KEYS[1], 'reported') ~= '1' then
  redis.call('HSET', KEYS[1], 'reported', '1')
  return {'exists', state}
end
local n = tonumber(ARGV[15])
for i = 7, 6 + n do
  local claim = read_claim(KEYS[i])
  if claim and refuses(claim, ARGV[3], ARGV[13]) then return {'forbidden', tostring(i - 6)} end
end
for i = 17, #ARGV do
  if redis.call('EXISTS', KEYS[i - 10 + n]) == 0 then redis.call('ZREM', KEYS[4], ARGV[i]) end
end
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[4]) then return {'busy', 'global'} end
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[5]) then return {'busy', 'user'} end
for i = 7, 6 + n do
  local claim = read_claim(KEYS[i])
  if type(claim) ~= 'table' then
    claim = {owner = ARGV[3], writer = (ARGV[13] ~= '' and ARGV[13]) or ARGV[3], holders = {}}
  end
  claim.holders[ARGV[7]] = ARGV[12]
  redis.call('SET', KEYS[i], cjson.encode(claim), 'EX', ARGV[14])
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'state', 'queued', 'token', ARGV[11], 'admission', ARGV[12],
  'attempt', 1, 'spec', ARGV[2], 'user', ARGV[3], 'created_at', ARGV[1], 'updated_at', ARGV[1],
  'progress', '0', 'step', 'queued', 'queue', ARGV[8], 'media_s', ARGV[9], 'estimate_s', ARGV[10])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[7])
redis.call('ZADD', KEYS[4], ARGV[1], ARGV[7])
redis.call('EXPIRE', KEYS[4], ARGV[6])
redis.call('ZADD', KEYS[5], ARGV[1], ARGV[7])
redis.call('ZADD', KEYS[6], ARGV[1], ARGV[7])
local cap = tonumber(ARGV[16])
redis.call('ZREMRANGEBYRANK', KEYS[5], 0, -cap - 1)
redis.call('ZREMRANGEBYRANK', KEYS[6], 0, -cap - 1)
return {'created', ARGV[11]}
"""
)

# Start (or resume) the attempt holding ARGV[1] and give it the lease. A running attempt is
# never resumed by a second delivery (its holder may only be frozen): the reaper requeues it
# under a new token once its lease expires. A parked job is resumed by its own token, and holds
# admission slots again only where the limits leave room (ARGV[7], ARGV[8]), else it stays
# parked ('busy'). A resume sooner than ARGV[9] s after the last look is a duplicate chain of
# countdown messages ('duplicate').
# KEYS: record, lease, active (all), active of the user. ARGV: 1 token, 2 now, 3 worker,
# 4 lease ms, 5 min record ttl, 6 job id, 7 max active, 8 max per user, 9 resume gap s.
START = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 'stale' end
if state == 'running' then return 'held' end
if state == 'parked' then
  local looked = tonumber(redis.call('HGET', KEYS[1], 'updated_at') or '0')
  if tonumber(ARGV[2]) - looked < tonumber(ARGV[9]) then return 'duplicate' end
  local everyone, mine = redis.call('ZCARD', KEYS[3]), redis.call('ZCARD', KEYS[4])
  if everyone >= tonumber(ARGV[7]) or mine >= tonumber(ARGV[8]) then
    redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
    return 'busy'
  end
  local since = redis.call('HGET', KEYS[1], 'created_at')
  redis.call('ZADD', KEYS[3], since, ARGV[6])
  redis.call('ZADD', KEYS[4], since, ARGV[6])
elseif state ~= 'queued' then
  return state
end
redis.call('HSET', KEYS[1], 'state', 'running', 'started_at', ARGV[2], 'updated_at', ARGV[2],
  'worker', ARGV[3], 'step', 'starting')
redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[5]) then redis.call('EXPIRE', KEYS[1], ARGV[5]) end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
return 'running'
"""

# A job whose attempt lost its lease (worker killed or frozen) goes back to the queue under the
# fresh token ARGV[3]; the old attempt, if it ever wakes or is redelivered, is fenced off. With
# ARGV[4] = '1' it stays 'running' with no lease instead, held by the reaper's token while the
# reaper aborts its uploads before ending it (a reaper that dies meanwhile leaves a job the next
# pass gives up again). Refused while the lease is held. Returns the attempt count, or 0.
# KEYS: record, lease. ARGV: 1 token, 2 now, 3 new token, 4 '1' to hold it for giving up.
REQUEUE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return 0 end
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'running', 'token', ARGV[3], 'step', 'giving up',
    'updated_at', ARGV[2], 'worker', 'reaper')
  return tonumber(redis.call('HGET', KEYS[1], 'attempt') or '1')
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'token', ARGV[3], 'step', 'requeued', 'updated_at', ARGV[2],
  'progress', '0')
return redis.call('HINCRBY', KEYS[1], 'attempt', 1)
"""

# A queued job whose message may have been lost is sent again under the SAME token: only its
# clock moves. The duplicate is harmless (one start wins). Returns how many times it has been
# sent again (the reaper gives up on a queue nobody serves), or 0.
# KEYS: record. ARGV: 1 token, 2 now.
RESEND = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
return redis.call('HINCRBY', KEYS[1], 'resends', 1)
"""

# Hand a running attempt back to the queue under the same token (a task retry follows).
# KEYS: record, lease. ARGV: 1 token, 2 step, 3 now.
RELEASE = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'queued', 'step', ARGV[2], 'updated_at', ARGV[3])
redis.call('DEL', KEYS[2])
return 1
"""

# Park a running attempt while S3 restores archived segments: no lease, no admission slots, a
# record (and claims) that live as long as a restore can take. Its own token resumes it (START).
# `parked_at` is the first park of this admission (a re-park keeps it): the restore deadline.
# KEYS: record, lease, active, active of the user, parked set, claims. ARGV: 1 token, 2 step,
# 3 now, 4 keep s, 5 job id.
PARK = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'parked', 'step', ARGV[2], 'progress', '0', 'updated_at', ARGV[3])
redis.call('HSETNX', KEYS[1], 'parked_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[5])
redis.call('ZREM', KEYS[4], ARGV[5])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[5])
for i = 6, #KEYS do
  if redis.call('TTL', KEYS[i]) < tonumber(ARGV[4]) then redis.call('EXPIRE', KEYS[i], ARGV[4]) end
end
return 1
"""

# Pin how far into the timeline the admission's first look at the recording reached: later
# attempts cut no segment starting past it (they adopt what the first one uploaded). Returns
# the pinned value, or false when this attempt is no longer the running one.
# KEYS: record. ARGV: 1 token, 2 seen to (ms).
PIN_VIEW = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return false end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return false end
redis.call('HSETNX', KEYS[1], 'seen_to', ARGV[2])
return redis.call('HGET', KEYS[1], 'seen_to')
"""

# The media seconds the range really holds (for TimeWait), while this attempt runs it.
# KEYS: record. ARGV: 1 token, 2 media s.
COVER = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'media_s', ARGV[2])
return 1
"""

# Record progress only while this attempt is still the running one.
# KEYS: record. ARGV: 1 token, 2 fraction, 3 step, 4 now.
PROGRESS = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[2], 'step', ARGV[3], 'updated_at', ARGV[4])
return 1
"""

# Renew the lease while the job's current token is ours and running.
# KEYS: record, lease. ARGV: 1 token, 2 lease ms.
RENEW = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
"""

# The fence itself: the same test, with no write. KEYS: record. ARGV: 1 token.
HOLDS = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
return 1
"""

# Record a multipart upload this attempt began, only while it still holds the job: an upload
# that is never recorded is never completed, and a recorded one is aborted by a later attempt,
# the reaper giving up, or a cancel. KEYS: record, uploads. ARGV: 1 token, 2 upload id,
# 3 entry (JSON), 4 keep s.
RECORD_UPLOAD = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""

# End the attempt holding ARGV[1] as done or failed (a parked one too, at its restore deadline):
# release its admission slots, its lease and its hold on the destination claims. The reaper
# ends a job only while no lease is held (ARGV[10] = '1'). KEYS: record, active, active of the
# user, lease, claims. ARGV: 1 token, 2 state, 3 now, 4 field, 5 value, 6 progress, 7 record
# ttl, 8 error code, 9 job id, 10 unless leased.
FINISH = (
    _CLAIM_HELPERS
    + """
if ARGV[10] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' and state ~= 'parked' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'finished_at', ARGV[3], 'updated_at', ARGV[3],
  'progress', ARGV[6], 'step', ARGV[2], ARGV[4], ARGV[5])
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'error_code', ARGV[8]) end
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('ZREM', KEYS[2], ARGV[9])
redis.call('ZREM', KEYS[3], ARGV[9])
redis.call('DEL', KEYS[4])
give_back(5, #KEYS, ARGV[9], redis.call('HGET', KEYS[1], 'admission') or '')
return 1
"""
)

# The owner's cancel: an active job (queued, running or parked) ends cancelled, whatever attempt
# holds it (its token then fails every check). It drops the lease, frees the admission slots,
# leaves the parked set, gives its claims back and is kept ARGV[2] s so polls learn of it.
# KEYS: record, lease, active, active of the user, parked set, claims. ARGV: 1 now, 2 hold s,
# 3 job id. Returns 'cancelled', 'ended' (nothing changed) or 'missing'.
CANCEL = (
    _CLAIM_HELPERS
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if state ~= 'queued' and state ~= 'running' and state ~= 'parked' then return 'ended' end
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'step', 'cancelled', 'finished_at', ARGV[1],
  'updated_at', ARGV[1], 'error', 'cancelled by its owner')
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[3])
redis.call('ZREM', KEYS[5], ARGV[3])
give_back(6, #KEYS, ARGV[3], redis.call('HGET', KEYS[1], 'admission') or '')
return 'cancelled'
"""
)

# Note that a failure a held poll delivered was answered, so the next identical request starts
# afresh. Only a failed job is marked: never a job a concurrent request already admitted again.
MARK_REPORTED = """
if redis.call('HGET', KEYS[1], 'state') ~= 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'reported', '1')
return 1
"""
