"""The export job record's transitions, as Lua scripts Redis runs atomically.

Each script checks the attempt (the fencing token) and the lease before it changes anything, so
two API processes answering the same request, a redelivered task racing its first delivery, or
a stale attempt waking from a freeze can never both win. tasks/exports/store.py runs them.
"""

# Admit a new job, or a fresh attempt of a failed one, unless a limit is reached. A failure is
# answered once (so a polling client learns of it) before the next request starts afresh. The
# attempt number keeps rising across admissions (it fences the old ones' writes); `first_attempt`
# marks where this admission began, so the attempt cap counts this admission's attempts only.
ADMIT = """
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'failed' then return {'exists', state} end
if state == 'failed' and redis.call('HGET', KEYS[1], 'reported') ~= '1' then
  redis.call('HSET', KEYS[1], 'reported', '1')
  return {'exists', state}
end
for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  if redis.call('EXISTS', 'resourced:export:' .. member) == 0 then redis.call('ZREM', KEYS[3], member) end
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return {'busy', 'global'} end
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then return {'busy', 'user'} end
local attempt = tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0') + 1
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempt', attempt, 'first_attempt', attempt,
  'spec', ARGV[2], 'user', ARGV[3], 'created_at', ARGV[1], 'updated_at', ARGV[1], 'progress', '0',
  'step', 'queued', 'queue', ARGV[8], 'media_s', ARGV[9], 'estimate_s', ARGV[10])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[7])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[7])
redis.call('EXPIRE', KEYS[3], ARGV[6])
return {'created', tostring(attempt)}
"""

# Move a queued job of the given attempt to running and give it the lease. A running attempt is
# never resumed by a second delivery of its message (the first holder may only be frozen): the
# reaper requeues it as a new attempt once its lease expires. A job parked for a restore is
# resumed by its own attempt, and holds admission slots again while it runs: only where the
# limits leave room (ARGV[8], ARGV[9]), else it stays parked ('busy') and is looked at again later.
# A resume arriving sooner than ARGV[10] seconds after the last look is a duplicate chain of
# countdown messages (a backlog made the reaper send one again): it is dropped ('duplicate').
CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 'stale' end
if state ~= 'queued' and state ~= 'running' then return state or 'missing' end
local parked = redis.call('HGET', KEYS[1], 'step') == ARGV[6]
if state == 'running' and not parked then return 'held' end
if parked then
  local looked = tonumber(redis.call('HGET', KEYS[1], 'updated_at') or '0')
  if tonumber(ARGV[2]) - looked < tonumber(ARGV[10]) then return 'duplicate' end
  local everyone, mine = redis.call('ZCARD', KEYS[3]), redis.call('ZCARD', KEYS[4])
  if everyone >= tonumber(ARGV[8]) or mine >= tonumber(ARGV[9]) then
    redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
    return 'busy'
  end
  local since = redis.call('HGET', KEYS[1], 'created_at')
  redis.call('ZADD', KEYS[3], since, ARGV[7])
  redis.call('ZADD', KEYS[4], since, ARGV[7])
end
redis.call('HSET', KEYS[1], 'state', 'running', 'started_at', ARGV[2], 'updated_at', ARGV[2],
  'worker', ARGV[3], 'step', 'starting')
redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[5]) then redis.call('EXPIRE', KEYS[1], ARGV[5]) end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
return 'running'
"""

# A job whose attempt lost its lease (worker killed or frozen) goes back to the queue as a new
# attempt; the old attempt, if it ever wakes or is redelivered, is fenced off and does nothing.
# Refused while the lease is held: a live worker's job is never taken from it.
REQUEUE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return 0 end
local attempt = tonumber(ARGV[1]) + 1
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempt', attempt, 'step', 'requeued', 'updated_at', ARGV[2],
  'progress', '0')
return attempt
"""

# A queued job whose message may have been lost is sent again under the SAME attempt: only its
# clock moves. Its first message, if it is merely waiting in a long queue, stays valid, and the
# duplicate is harmless (one claim wins); a wait in the queue never costs an attempt. Returns how
# many times it has been sent again (the reaper gives up on a queue nobody serves), or 0.
RESEND = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
return redis.call('HINCRBY', KEYS[1], 'resends', 1)
"""

# Hand a running attempt back to the queue under the same attempt number (a task retry follows).
RELEASE = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'queued', 'step', ARGV[2], 'updated_at', ARGV[3])
redis.call('DEL', KEYS[2])
return 1
"""

# Park a running attempt while S3 restores archived segments: no lease, no admission slots, and
# a record that lives as long as a restore can take. Its own attempt resumes it (see _CLAIM).
# `parked_at` is the first park of this admission (a re-park keeps it): the restore deadline.
PARK = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'step', ARGV[2], 'progress', '0', 'updated_at', ARGV[3])
redis.call('HSETNX', KEYS[1], 'parked_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[5])
redis.call('ZREM', KEYS[4], ARGV[5])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[5])
return 1
"""

# Pin how far into the timeline the job's first look at the recording reached (a live recording
# grows): later attempts of this admission cut no segment starting past it, so they cut what the
# first one cut and adopt its objects instead of writing new versions. Returns the pinned value,
# or false when this attempt is no longer the running one.
PIN_VIEW = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return false end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return false end
redis.call('HSETNX', KEYS[1], 'seen_to', ARGV[2])
return redis.call('HGET', KEYS[1], 'seen_to')
"""

# Record progress only while this attempt is still the running one.
PROGRESS = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[2], 'step', ARGV[3], 'updated_at', ARGV[4])
return 1
"""

# End an active attempt as ready or failed, and release its admission slots and its lease. The
# reaper ends a job only while no lease is held (ARGV[10] = '1').
FINISH = """
if ARGV[10] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'finished_at', ARGV[3], 'updated_at', ARGV[3],
  'progress', ARGV[6], 'step', ARGV[2], ARGV[4], ARGV[5])
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'error_code', ARGV[8]) end
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('ZREM', KEYS[2], ARGV[9])
redis.call('ZREM', KEYS[3], ARGV[9])
redis.call('DEL', KEYS[4])
return 1
"""

# Note that a failure a held poll delivered was answered, so the next identical request starts
# afresh. Only a failed job is marked: never a job a concurrent request already admitted again.
MARK_REPORTED = """
if redis.call('HGET', KEYS[1], 'state') ~= 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'reported', '1')
return 1
"""
