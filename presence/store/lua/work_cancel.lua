-- work_cancel.lua: the customer gave up (hung up, closed the chat) before an
-- agent took the item: it ends as abandoned.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] work id  ARGV[3] reason
-- Reply: {"ok", woken queue...} | {"not_found"|"conflict", "work_id", message}
local wid, reason = ARGV[2], ARGV[3]
local it = hmget(key('work', wid), {'state', 'agent'})
if not it.state then
  return {'not_found', 'work_id', 'no work item ' .. wid}
end
if it.state ~= 'queued' and it.state ~= 'offered' then
  return {'conflict', 'work_id', 'work item ' .. wid .. ' is ' .. it.state .. '; only a queued or offered item can be cancelled'}
end
local woke, aid, q, ch, prev, _, rec = finish(wid, 'abandoned', {reason = reason})
if prev == 'offered' then
  emit_item({type = 'offer.rescinded', to = aid, work_id = wid, reason = 'abandoned'}, aid, nil, rec)
end
-- (counted by its `abandon` record: `count`, _lib_core.lua)
record({ev = 'abandon', queue = q, channel = ch, work = wid, agent = aid or '', reason = reason, was = prev,
        paused = paused(wid, q)}, wid)
return {'ok', unpack(woke)}
