--[[
  ledger-beat: the heartbeat of a batch run. While it beats, the run's claims are its own; when
  it stops (the process died), other runs may take them over.

  KEYS[1] ledger hash of the batch
  KEYS[2] owners hash of the batch: field = run id, value = heartbeat expiry in ms

  ARGV[1] run id
  ARGV[2] heartbeat lifetime in ms
  ARGV[3] ledger lifetime in ms (the batch's TTL, renewed by every run)

  Returns the number of live runs of the batch, this one included.

  TIME, not a client clock: every run's expiry is compared with one clock.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
redis.call('HSET', KEYS[2], ARGV[1], string.format('%.17g', now + tonumber(ARGV[2])))
local live = 0
local owners = redis.call('HGETALL', KEYS[2])
for i = 1, #owners, 2 do
  if tonumber(owners[i + 1]) <= now then redis.call('HDEL', KEYS[2], owners[i]) else live = live + 1 end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return live
