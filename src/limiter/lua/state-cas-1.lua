--[[
  state-cas: writes the adaptive state of a lane if nobody wrote it since it was read
  (compare-and-set on its `version` field), so that a controller transition computed in
  JavaScript applies atomically for every process.

  KEYS[1] adaptive state hash of the lane

  ARGV[1] version read ("0" when the lane had no state)
  ARGV[2] id of this write, kept in the `writer` field: when ioredis resends the call after a
          dropped connection, the second run sees its own write and reports success instead of
          a conflict (which would apply the transition twice)
  ARGV[3] TTL of the hash in ms, refreshed on every write
  ARGV[4] wake channel of the lane
  ARGV[5] "1" to publish on the wake channel (the connection cap rose), else "0"
  ARGV[6] number k of fields to set
  ARGV[7 .. 6+2k]   field, value pairs to set
  ARGV[7+2k .. n]   fields to delete (the null ones)

  Returns { 1, new version } when written; on a conflict { 0, now, field1, value1, ... }: the
  limiter clock and the current hash, so that the caller can retry without reading again.

  TIME (on a conflict only), not a client clock: the retried transition must see the same clock
  as reserve. Redis 7 replicates the effects of a script, so reading TIME here is safe.
]]
local current = redis.call('HMGET', KEYS[1], 'version', 'writer')
local version = current[1] or '0'
if version ~= ARGV[1] then
  if current[2] == ARGV[2] then
    return { 1, tonumber(version) }
  end
  local time = redis.call('TIME')
  local state = redis.call('HGETALL', KEYS[1])
  table.insert(state, 1, string.format('%.17g', tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000))
  table.insert(state, 1, 0)
  return state
end

local k = tonumber(ARGV[6])
local last = 6 + 2 * k
redis.call('HSET', KEYS[1], 'writer', ARGV[2], unpack(ARGV, 7, last))
if #ARGV > last then
  redis.call('HDEL', KEYS[1], unpack(ARGV, last + 1))
end
local next = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[5] == '1' then
  redis.call('PUBLISH', ARGV[4], 'state')
end
return { 1, next }
