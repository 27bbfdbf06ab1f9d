-- work_note.lua: append a note to an item's case timeline (append-only)
-- and show it to the agent holding the item.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] work id  ARGV[3] author  ARGV[4] agent who must
-- hold the item ("" for supervisors and services)
-- ARGV[5] the note (msgpack {author, text, ts})  ARGV[6] {note = ...} (msgpack)
-- Reply: {"ok", comment count} | {"not_found"|"not_yours", "work_id", message}
local wid, author, holder_only, note, wrapped = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local it = hmget(key('work', wid), {'state', 'agent', 'queue', 'channel'})
if not it.state then
  return {'not_found', 'work_id', 'no work item ' .. wid}
end
local held = it.state == 'assigned' or it.state == 'wrapup'
if holder_only ~= '' and (not held or it.agent ~= holder_only) then
  return {'not_yours', 'work_id', 'work item ' .. wid .. ' is not in your hands'}
end
local n = redis.call('RPUSH', key('case', wid, 'comments'), note)
if n == 1 then expire_with_item(wid, key('case', wid, 'comments')) end
if redis.call('EXISTS', key('case', wid)) == 1 then
  redis.call('HSET', key('case', wid), 'updated', NOW)
end
if (held or it.state == 'offered') and it.agent ~= '' then
  emit({type = 'work.note', to = it.agent, work_id = wid}, wrapped)
end
record({ev = 'note', work = wid, author = author, queue = it.queue or '', channel = it.channel or ''}, wid)
hook('case.comment', {work_id = wid, author = author}, wrapped)
return {'ok', n}
