-- work_composing.lua: the agent holding an item starts (or stops) writing a
-- reply. The case shows "being answered by <agent>" to everyone else until
-- `until_ms` (the panel renews it while the agent types; a reply or a stop
-- clears it), and the event reaches the supervisors and the agent's other
-- tabs, so nobody starts a second answer to the same message.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] work id  ARGV[3] agent (must hold the item)
-- ARGV[4] "1" composing, "0" stopped  ARGV[5] how long the mark lasts (ms)
-- Reply: {"ok", until (ms, 0 when stopped)} | {"not_found"|"not_yours"|"conflict", field, message}
local wid, aid, on, ttl = ARGV[2], ARGV[3], ARGV[4] == '1', num(ARGV[5], 15000)
local it, err = mine(wid, aid, {assigned = true, wrapup = true}, 'in hand')
if not it then return err end
local ck = key('case', wid)
if redis.call('EXISTS', ck) == 0 then
  return {'not_found', 'work_id', 'work item ' .. wid .. ' has no case to reply on'}
end
local until_ms = 0
if on then
  until_ms = NOW + ttl
elseif not redis.call('HGET', ck, 'composing') then
  return {'ok', 0}
end
case_composing(wid, aid, until_ms)
local ev = composing_mark(wid, aid, until_ms, it.queue, it.channel)
ev.sup, ev.to = 1, aid
emit(ev)
return {'ok', until_ms}
