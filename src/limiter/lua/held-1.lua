--[[
  held: counts the connection slots of a lane held now, by every process.

  KEYS[1] leases sorted set of the lane: member = lease id, score = expiry in ms

  ARGV: none

  Returns the number of unexpired leases. Expired ones are removed first.

  TIME, not a client clock: lease expiries written by every process are compared with one
  clock. Redis 7 replicates the effects of a script, so reading TIME here is safe.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.17g', now))
return redis.call('ZCARD', KEYS[1])
