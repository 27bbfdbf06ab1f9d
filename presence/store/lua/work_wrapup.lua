-- work_wrapup.lua: the agent starts after-contact work on an item. Capacity
-- stays held; the queue's wrap-up limit completes it automatically.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] agent id  ARGV[3] work id
-- Reply: {"ok", deadline ms (0 = none)} | {error code, "work_id", message}
local aid, wid = ARGV[2], ARGV[3]
local it, err = mine(wid, aid, {assigned = true}, 'assigned')
if not it then return err end
local deadline = start_wrapup(wid, aid, it.queue)
record({ev = 'wrapup', agent = aid, queue = it.queue, channel = it.channel, work = wid}, wid)
return {'ok', deadline}
