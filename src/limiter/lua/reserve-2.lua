--[[
  reserve: books the next send slot of a lane in every rate window at once and says how long to
  wait for it. Windows of a minute or less are GCRA in reserve mode; longer windows are quotas,
  a bucketed rolling count that never admits more than max sends in any interval of length per.
  The arithmetic mirrors gcraReserve in src/limiter/gcra.ts (where the proof is): keep the two in
  step.

  KEYS[1] rate hash of the lane (the "tat" key):
            field <i>           theoretical arrival time of GCRA window i (0-based), in ms
            field q<i>:<b>      sends booked in bucket b of quota window i (0-based), an integer;
                                b = floor(at / bucketMs), an integer (absolute bucket number)
          Fields that can no longer matter (buckets older than floor(now / bucketMs) - k, fields
          of windows that are not there or not of that kind) are deleted.
  KEYS[2] adaptive state hash of the lane (rateFactor, connections, pausedUntil, pauseReason,
          stopped, lastDecreaseAt, version)

  ARGV[1]  margin in ms: the rate hash expires this long after the last moment it matters (the
           latest TAT, and the time the newest quota bucket has left its window: per after it)
  ARGV[2]  '1' to return the quota counts (below), '0' not to: only a process that goes on alone
           while Redis is away (onRedisDown: 'local') uses them
  ARGV[3 + 4(i-1)] .. ARGV[6 + 4(i-1)]  window i (i >= 1): kind, max, perMs, then
           for kind 'gcra':  burst
           for kind 'quota': k, the number of buckets (bucketMs = ceil(perMs / k))
           rateFactor stretches GCRA windows only: a quota is a quota.

  Returns { waitMs, now, quota, rateFactor, connections, pausedUntil, pauseReason, stopped, lastDecreaseAt }:
  waitMs and now as strings ("%.17g", since Lua numbers in a reply are truncated to integers);
  quota the live bucket counts of the quota windows after this booking, "<i>:<b>:<count>" joined
  by "," ("" when not asked for, without quota windows, or when nothing was booked), for a process
  that goes on alone while Redis is away (src/limiter/failover.ts); the state fields as stored (nil when absent:
  the reply ends at the first nil, so they come last). When the lane is stopped nothing is booked
  and waitMs is "0".

  TIME, not a client clock: every process books against the one clock of the server that holds
  the TATs and bucket counts, so clock skew between hosts cannot hand the same slot to two of
  them. Redis 7 replicates the effects of a script rather than the script, so reading TIME here
  is safe.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000

local function num(value)
  return string.format('%.17g', value)
end

local s = redis.call('HMGET', KEYS[2], 'rateFactor', 'connections', 'pausedUntil', 'pauseReason', 'stopped', 'lastDecreaseAt')
local function reply(waitMs, quota)
  return { num(waitMs), num(now), quota or '', s[1], s[2], s[3], s[4], s[5], s[6] }
end

-- An empty reason does not stop a lane, as in JavaScript ('' is falsy there).
if s[5] and s[5] ~= '' then
  return reply(0)
end

local rateFactor = tonumber(s[1]) or 1
local pausedUntil = tonumber(s[3]) or 0
local wantQuota = ARGV[2] == '1'
local count = (#ARGV - 2) / 4
if count < 1 then
  return reply(math.max(now, pausedUntil) - now)
end

local windows = {}
for i = 1, count do
  local base = 3 + 4 * (i - 1)
  local w = { quota = ARGV[base] == 'quota', max = tonumber(ARGV[base + 1]), perMs = tonumber(ARGV[base + 2]) }
  if w.quota then
    w.k = tonumber(ARGV[base + 3])
    w.bucketMs = math.ceil(w.perMs / w.k)
    w.oldest = math.floor(now / w.bucketMs) - w.k
    w.counts = {}
  else
    w.interval = w.perMs / w.max / rateFactor
    w.tolerance = (tonumber(ARGV[base + 3]) - 1) * w.interval
  end
  windows[i] = w
end

-- TATs of the GCRA windows and live bucket counts of the quotas; any other field is stale.
local stale = {}
local stored = redis.call('HGETALL', KEYS[1])
for f = 1, #stored, 2 do
  local field = stored[f]
  local qi, qb = string.match(field, '^q(%d+):(%-?%d+)$')
  if qi then
    local w = windows[tonumber(qi) + 1]
    local bucket = tonumber(qb)
    if w and w.quota and bucket >= w.oldest then
      w.counts[bucket] = tonumber(stored[f + 1])
      if not w.last or bucket > w.last then
        w.last = bucket
      end
    else
      stale[#stale + 1] = field
    end
  else
    local w = windows[(tonumber(field) or -1) + 1]
    if w and not w.quota then
      w.tat = tonumber(stored[f + 1])
    else
      stale[#stale + 1] = field
    end
  end
end

-- GCRA: at >= max(now, pausedUntil, max_i(max(tat_i, now) - tau_i))
local at = math.max(now, pausedUntil)
for i = 1, count do
  local w = windows[i]
  if not w.quota then
    at = math.max(at, math.max(w.tat or 0, now) - w.tolerance)
  end
end

-- Quota: the earliest time >= at where S(j) + 1 <= max for every j in c .. c + k, c the bucket
-- of that time and S(j) the sum of buckets j - k .. j. Walks j once with a running sum.
local function earliest(w, from)
  local k = w.k
  local first = math.floor(from / w.bucketMs)
  local last = math.max(first, w.last or first)
  local sum = 0
  for b = first - k, first do
    sum = sum + (w.counts[b] or 0)
  end
  local candidate = first
  local j = first
  while j <= candidate + k and j <= last + k do
    if j > first then
      sum = sum + (w.counts[j] or 0) - (w.counts[j - k - 1] or 0)
    end
    if sum + 1 > w.max then
      candidate = j + 1
    end
    j = j + 1
  end
  if candidate == first then
    return from
  end
  return candidate * w.bucketMs
end

-- Until every quota admits the same at (at only grows; capped, then the time all are empty).
local MAX_PASSES = 32
local pass = 1
while true do
  local moved = false
  for i = 1, count do
    local w = windows[i]
    if w.quota then
      local later = earliest(w, at)
      if later > at then
        at = later
        moved = true
      end
    end
  end
  if not moved then
    break
  end
  if pass >= MAX_PASSES then
    for i = 1, count do
      local w = windows[i]
      if w.quota and w.last then
        at = math.max(at, (w.last + w.k + 1) * w.bucketMs)
      end
    end
    break
  end
  pass = pass + 1
end

-- GCRA: tat_i' = max(tat_i, at) + T_i. Quota: one more send in the bucket of at.
local latest = now
local updates = {}
local quota = {}
for i = 1, count do
  local w = windows[i]
  if w.quota then
    local bucket = math.floor(at / w.bucketMs)
    w.counts[bucket] = (w.counts[bucket] or 0) + 1
    updates[#updates + 1] = 'q' .. (i - 1) .. ':' .. string.format('%d', bucket)
    updates[#updates + 1] = string.format('%d', w.counts[bucket])
    if wantQuota then
      for b, n in pairs(w.counts) do
        quota[#quota + 1] = string.format('%d:%d:%d', i - 1, b, n)
      end
    end
    -- The newest bucket matters until it has left the window: k + 1 buckets after its start.
    latest = math.max(latest, (math.max(bucket, w.last or bucket) + w.k + 1) * w.bucketMs)
  else
    local tat = math.max(w.tat or 0, at) + w.interval
    latest = math.max(latest, tat)
    updates[#updates + 1] = tostring(i - 1)
    updates[#updates + 1] = num(tat)
  end
end
if #stale > 0 then
  redis.call('HDEL', KEYS[1], unpack(stale))
end
redis.call('HSET', KEYS[1], unpack(updates))
-- A TAT in the past counts as now and a bucket older than k buckets before now counts for
-- nothing, so once latest has passed the hash carries nothing.
redis.call('PEXPIRE', KEYS[1], math.ceil(latest - now) + tonumber(ARGV[1]))

return reply(at - now, table.concat(quota, ','))
