-- offer_accept.lua: the agent takes an offered item; it becomes theirs.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] agent id  ARGV[3] work id
-- Reply: {"ok"} | {"not_found"|"not_yours"|"conflict", "work_id", message}
local aid, wid = ARGV[2], ARGV[3]
local it, err = mine(wid, aid, {offered = true}, 'offered')
if not it then return err end
assign(wid, aid, it.queue, it.channel, 'accept')
return {'ok'}
