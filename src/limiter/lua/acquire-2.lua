--[[
  acquire: grants one connection slot of a lane if the lane holds fewer than its effective cap.
  A slot is a lease: a member of a sorted set scored by its expiry, so that the slots of a
  process that dies without releasing come back once their leases run out.

  KEYS[1] leases sorted set of the lane: member = lease id, score = expiry in ms
  KEYS[2] adaptive state hash of the lane (its `connections` field is the effective cap)

  ARGV[1] lease id
  ARGV[2] lease duration in ms
  ARGV[3] configured maxConnections: the cap when the state hash has no `connections`, and its upper bound

  Returns { granted (1 or 0), held (after this call), cap }. Granting an id that already holds a
  slot answers granted again without taking a second one.

  TIME, not a client clock: lease expiries written by every process are compared with one
  clock. Redis 7 replicates the effects of a script, so reading TIME here is safe.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local leaseMs = tonumber(ARGV[2])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.17g', now))

-- Already granted: ioredis resent the call after a dropped connection (autoResendUnfulfilledCommands).
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  local held = redis.call('ZCARD', KEYS[1])
  return { 1, held, held }
end

-- At least one slot, as in the memory limiter: a lane at cap 0 would never send again. Never more
-- than configured: a state written under a higher maxConnections (before a deploy lowered it) lives on.
local configured = tonumber(ARGV[3])
local connections = math.min(tonumber(redis.call('HGET', KEYS[2], 'connections')) or configured, configured)
local cap = math.max(1, math.floor(connections))

local held = redis.call('ZCARD', KEYS[1])
if held >= cap then
  return { 0, held, cap }
end

redis.call('ZADD', KEYS[1], string.format('%.17g', now + leaseMs), ARGV[1])
-- Expire the set with its last lease; never shorten the TTL another process's longer lease set.
if redis.call('PTTL', KEYS[1]) < leaseMs then
  redis.call('PEXPIRE', KEYS[1], math.ceil(leaseMs))
end
return { 1, held + 1, cap }
