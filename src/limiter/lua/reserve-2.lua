--[[
  reserve: books the next send slot of a lane in every rate window at once (GCRA in reserve
  mode) and says how long to wait for it. The arithmetic mirrors src/limiter/gcra.ts: keep the
  two in step.

  KEYS[1] tat hash of the lane: field i (0-based) = theoretical arrival time of window i, in ms
  KEYS[2] adaptive state hash of the lane (rateFactor, connections, pausedUntil, pauseReason,
          stopped, lastDecreaseAt, version)

  ARGV[1]  margin in ms: the tat hash expires this long after its latest TAT
  ARGV[2 + 3(i-1)], ARGV[3 + 3(i-1)], ARGV[4 + 3(i-1)]  max, perMs, burst of window i (i >= 1)

  Returns { waitMs, now, rateFactor, connections, pausedUntil, pauseReason, stopped, lastDecreaseAt }:
  waitMs and now as strings ("%.17g", since Lua numbers in a reply are truncated to integers),
  the state fields as stored (nil when absent). When the lane is stopped nothing is booked and
  waitMs is "0".

  TIME, not a client clock: every process books against the one clock of the server that holds
  the TATs, so clock skew between hosts cannot hand the same slot to two of them. Redis 7
  replicates the effects of a script rather than the script, so reading TIME here is safe.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000

local function num(value)
  return string.format('%.17g', value)
end

local s = redis.call('HMGET', KEYS[2], 'rateFactor', 'connections', 'pausedUntil', 'pauseReason', 'stopped', 'lastDecreaseAt')
local function reply(waitMs)
  return { num(waitMs), num(now), s[1], s[2], s[3], s[4], s[5], s[6] }
end

-- An empty reason does not stop a lane, as in JavaScript ('' is falsy there).
if s[5] and s[5] ~= '' then
  return reply(0)
end

local rateFactor = tonumber(s[1]) or 1
local pausedUntil = tonumber(s[3]) or 0
local count = (#ARGV - 1) / 3
if count < 1 then
  return reply(math.max(now, pausedUntil) - now)
end

local fields = {}
for i = 1, count do
  fields[i] = tostring(i - 1)
end
local tats = redis.call('HMGET', KEYS[1], unpack(fields))

-- at = max(now, pausedUntil, max_i(max(tat_i, now) - tau_i))
local at = math.max(now, pausedUntil)
local intervals = {}
for i = 1, count do
  local base = 2 + 3 * (i - 1)
  local interval = tonumber(ARGV[base + 1]) / tonumber(ARGV[base]) / rateFactor
  local tolerance = (tonumber(ARGV[base + 2]) - 1) * interval
  intervals[i] = interval
  at = math.max(at, math.max(tonumber(tats[i]) or 0, now) - tolerance)
end

-- tat_i' = max(tat_i, at) + T_i
local latest = now
local updates = {}
for i = 1, count do
  local tat = math.max(tonumber(tats[i]) or 0, at) + intervals[i]
  latest = math.max(latest, tat)
  updates[#updates + 1] = fields[i]
  updates[#updates + 1] = num(tat)
end
redis.call('HSET', KEYS[1], unpack(updates))
-- A TAT in the past counts as now, so once the latest TAT has passed the hash carries nothing.
redis.call('PEXPIRE', KEYS[1], math.ceil(latest - now) + tonumber(ARGV[1]))

return reply(at - now)
