--[[
  renew: extends the leases one process holds on a lane, in one call per lane per tick.

  KEYS[1] leases sorted set of the lane: member = lease id, score = expiry in ms

  ARGV[1]    lease duration in ms
  ARGV[2..n] ids of the leases to extend

  Returns the ids that were no longer held (expired before this renewal): their slots may
  already belong to someone else, so they are not extended.

  TIME, not a client clock: lease expiries written by every process are compared with one
  clock. Redis 7 replicates the effects of a script, so reading TIME here is safe.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local leaseMs = tonumber(ARGV[1])
local expiry = string.format('%.17g', now + leaseMs)

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.17g', now))

local lost = {}
local renewed = 0
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i])
    renewed = renewed + 1
  else
    lost[#lost + 1] = ARGV[i]
  end
end

if renewed > 0 and redis.call('PTTL', KEYS[1]) < leaseMs then
  redis.call('PEXPIRE', KEYS[1], math.ceil(leaseMs))
end
return lost
