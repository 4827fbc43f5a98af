--[[
  procs: registers this process as alive and counts the processes that share the key prefix.
  Their number gives each one its share of the limits when Redis goes away (onRedisDown: 'local').

  KEYS[1] sorted set of processes: member = process id, score = expiry in ms

  ARGV[1] process id
  ARGV[2] lifetime of the registration in ms

  Returns the number of live processes, this one included.

  TIME, not a client clock: every process's expiry is compared with one clock.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.17g', now))
redis.call('ZADD', KEYS[1], string.format('%.17g', now + tonumber(ARGV[2])), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
