-- offer_decline.lua: the agent turns an offer down. The item goes back to
-- its queue with its original age and is never offered to this agent again.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] agent id  ARGV[3] work id  ARGV[4] reason
-- Reply: {"ok", queue} ({"ok"} when routed inline: route_later) | {"not_found"|"not_yours"|"conflict", "work_id", message}
local aid, wid, reason = ARGV[2], ARGV[3], ARGV[4]
local it, err = mine(wid, aid, {offered = true}, 'offered')
if not it then return err end
redis.call('HSET', key('agent', aid), 'missed', 0)
local q = requeue(wid, 'declined', true, reason)
return {'ok', unpack(route_later({q}))}
