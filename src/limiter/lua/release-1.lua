--[[
  release: gives connection slots of a lane back and wakes the acquirers waiting for one, in
  every process (they subscribe to the lane's wake channel).

  KEYS[1] leases sorted set of the lane: member = lease id, score = expiry in ms

  ARGV[1]    wake channel of the lane
  ARGV[2..n] ids of the leases to release

  Returns how many of the leases were still held (and so released).

  No TIME here: removing a lease does not depend on when it expires.
]]
local removed = redis.call('ZREM', KEYS[1], unpack(ARGV, 2))
if removed > 0 then
  redis.call('PUBLISH', ARGV[1], 'release')
end
return removed
