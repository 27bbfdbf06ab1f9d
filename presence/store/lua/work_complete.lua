-- work_complete.lua: the agent finishes an item; its capacity is released
-- and the caller wakes the dispatcher for the agent's queues at once.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] agent id  ARGV[3] work id  ARGV[4] disposition
-- Reply: {"ok", woken queue...} (none when routed inline: route_later) | {error code, "work_id", message}
local aid, wid, disposition = ARGV[2], ARGV[3], ARGV[4]
-- what `finish` reads too, in the same HMGET
local it, err = mine(wid, aid, {assigned = true, wrapup = true}, 'in hand', FINISH_FIELDS)
if not it then return err end
local woke = complete(wid, disposition, 'agent', it)
return {'ok', unpack(route_later(woke))}
