--[[
  state-get: reads the adaptive state of a lane together with the limiter clock, the input of a
  controller transition (see state-cas-1.lua for the write).

  KEYS[1] adaptive state hash of the lane (rateFactor, connections, pausedUntil, pauseReason,
          stopped, lastDecreaseAt, version)

  ARGV: none

  Returns { now, field1, value1, field2, value2, ... }: now in ms as a string ("%.17g"), then
  the hash as HGETALL gives it (empty when the lane has no state yet).

  TIME, not a client clock: transitions compute pauses (`pausedUntil = now + ms`) that reserve
  compares with TIME, so both must read the same clock. Redis 7 replicates the effects of a
  script, so reading TIME here is safe.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local state = redis.call('HGETALL', KEYS[1])
table.insert(state, 1, string.format('%.17g', now))
return state
