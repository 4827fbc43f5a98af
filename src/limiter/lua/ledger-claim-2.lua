--[[
  ledger-claim: claims a message id of a batch for one run, or says why not.
  A ledger entry is "<state>|<owner>": c claimed, s sending, S sent, f failed, d in doubt; a
  claim also names the item of the run that made it: "c|<owner>|<token>". A claim or a sending
  mark that took over an entry in doubt (resendInDoubt) ends in "|d": given back unsent, the entry
  goes back to in doubt (ledger-mark), so a later run does not send it as never sent.

  KEYS[1] ledger hash of the batch: field = message id, value = "<state>|<owner>[|<token>]"
  KEYS[2] owners hash of the batch: field = run id, value = heartbeat expiry in ms

  ARGV[1] message id
  ARGV[2] run id of the caller
  ARGV[3] '1' to claim entries in doubt (resendInDoubt), else '0'
  ARGV[4] the claiming item's token, unique within the run (its position in the batch)
  ARGV[5] ledger lifetime in ms (the batch's TTL): given to the ledger hash when it has none, as
          when the run's first heartbeat came before the hash existed and the run dies before
          the next one

  Returns 'claimed', 'sent', 'in-doubt' or 'busy'.

  The same claim made twice (retried after a timeout, or sent again by ioredis after a reconnect)
  finds its own entry and answers 'claimed' again; another item of the run with the same id is
  'busy'. Without the token the repeat would read as a duplicate, and the message would be skipped
  and never sent.

  A claim held by a run whose heartbeat has expired (its process died) is free again when it
  never reached the network (c), and in doubt when it did (s): the server may have accepted it.
  TIME, not a client clock, decides whether a heartbeat has expired.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local id, me = ARGV[1], ARGV[2]

local function claim(doubt)
  redis.call('HSET', KEYS[1], id, 'c|' .. me .. '|' .. ARGV[4] .. (doubt and '|d' or ''))
  if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
  return 'claimed'
end

local entry = redis.call('HGET', KEYS[1], id)
if not entry then return claim() end

-- Whether a claim or sending mark took over an entry in doubt (owners and tokens never end so).
local doubt = string.sub(entry, -2) == '|d'
if doubt then entry = string.sub(entry, 1, -3) end
local sep = string.find(entry, '|', 1, true)
local state, owner = string.sub(entry, 1, sep - 1), string.sub(entry, sep + 1)
local token
local sep2 = string.find(owner, '|', 1, true)
if sep2 then owner, token = string.sub(owner, 1, sep2 - 1), string.sub(owner, sep2 + 1) end

if state == 'S' then return 'sent' end
-- Failed or left in doubt earlier in this same run: a repeat of the id in the batch, not a re-run.
if (state == 'f' or state == 'd') and owner == me then return 'busy' end
if state == 'c' or state == 's' then
  if owner == me then return (state == 'c' and token == ARGV[4]) and 'claimed' or 'busy' end
  local alive = tonumber(redis.call('HGET', KEYS[2], owner) or '0')
  if alive > now then return 'busy' end
  -- A dead run's claim that had taken over an entry in doubt is still in doubt.
  if state == 'c' and not doubt then return claim(false) end
end
if state == 's' or state == 'd' or doubt then
  if ARGV[3] == '1' then return claim(true) end
  if state ~= 'd' then redis.call('HSET', KEYS[1], id, 'd|' .. owner) end
  return 'in-doubt'
end
-- f: failed in an earlier run; a re-run tries it again.
return claim(false)
