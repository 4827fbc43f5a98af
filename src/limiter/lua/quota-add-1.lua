--[[
  quota-add: counts into a lane's quota buckets the sends a process booked on its own while Redis
  was away (onRedisDown: 'local', src/limiter/failover.ts), so that a quota holds for the fleet
  across the outage.

  KEYS[1] rate hash of the lane (see reserve-2.lua): fields q<i>:<b>, sends booked in bucket b of
          quota window i

  ARGV[1]  margin in ms: the hash lives at least this long past the time the newest bucket added
           has left its window (as reserve-2.lua's)
  ARGV[2 + 3j], ARGV[3 + 3j], ARGV[4 + 3j] (j >= 0)  one bucket: its field q<i>:<b>, the sends
           to add, and the epoch ms at which it has left its window ((b + k + 1) * bucketMs)

  Returns the quota buckets of the lane after the additions, "<i>:<b>:<count>" joined by ","
  (buckets too old to matter included: the caller drops them).

  Run again after a timeout that hid a success, it adds twice: the quota is then under-used, never
  exceeded.

  TIME, not a client clock, only to set how long the hash lives (as reserve-2.lua does): the buckets themselves are numbered by the process
  that booked them alone (its clock, the only one it had), which for buckets of an hour or so
  (2.5 s at least) matters by less than the skew between the two clocks.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000

local latest = now
for j = 2, #ARGV, 3 do
  redis.call('HINCRBY', KEYS[1], ARGV[j], ARGV[j + 1])
  latest = math.max(latest, tonumber(ARGV[j + 2]))
end
-- Never shorten the hash's life (its GCRA windows may need longer); -1 (none yet) is below anything.
local wanted = math.ceil(latest - now) + tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < wanted then
  redis.call('PEXPIRE', KEYS[1], wanted)
end

local quota = {}
local stored = redis.call('HGETALL', KEYS[1])
for f = 1, #stored, 2 do
  local qi, qb = string.match(stored[f], '^q(%d+):(%-?%d+)$')
  if qi then
    quota[#quota + 1] = qi .. ':' .. qb .. ':' .. stored[f + 1]
  end
end
return table.concat(quota, ',')
