--[[
  ledger-mark: records how a claimed message went for the run that holds it.

  KEYS[1] ledger hash of the batch

  ARGV[1] message id
  ARGV[2] run id
  ARGV[3] new state: s sending, S sent, f failed, d in doubt, or '-' to give the claim back
          (the entry goes, or goes back to in doubt when the claim took over one: "|d" at its
          end, kept by a sending mark)

  Returns 1 when written, 0 when the entry belongs to another run (it took the claim over after
  this run's heartbeat expired) and was left alone.

  No TIME: ownership, not expiry, decides here; ledger-claim compares heartbeats with TIME.
]]
local entry = redis.call('HGET', KEYS[1], ARGV[1])
local doubt = entry and string.sub(entry, -2) == '|d'
if entry then
  local sep = string.find(entry, '|', 1, true)
  local owner = string.sub(entry, sep + 1)
  -- A claim ("c|<owner>|<token>") also names the item that made it.
  local sep2 = string.find(owner, '|', 1, true)
  if sep2 then owner = string.sub(owner, 1, sep2 - 1) end
  -- A sent entry is final whoever wrote it; another run's live claim is not ours to change.
  if string.sub(entry, 1, sep - 1) == 'S' and ARGV[3] ~= 'S' then return 0 end
  if owner ~= ARGV[2] and ARGV[3] ~= 'S' then return 0 end
end
if ARGV[3] == '-' and doubt then
  redis.call('HSET', KEYS[1], ARGV[1], 'd|' .. ARGV[2])
elseif ARGV[3] == '-' then
  redis.call('HDEL', KEYS[1], ARGV[1])
elseif ARGV[3] == 's' and doubt then
  redis.call('HSET', KEYS[1], ARGV[1], 's|' .. ARGV[2] .. '|d')
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. '|' .. ARGV[2])
end
return 1
