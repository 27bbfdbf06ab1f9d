-- queue_delete.lua: remove a queue that has no members and no waiting items.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] queue name
-- Reply: {"ok"} | {"not_found"|"conflict", "name", message}
local q = ARGV[2]
if not redis.call('ZSCORE', key('queues'), q) then
  return {'not_found', 'name', 'no queue ' .. q}
end
if redis.call('ZCARD', key('queue', q, 'waiting')) > 0 then
  return {'conflict', 'name', 'queue ' .. q .. ' still has waiting items'}
end
-- an offered or held item goes back to its queue on decline, timeout, pull
-- or transfer: it would land in a queue nobody routes any more. Scanning the
-- open items is fine on this admin path.
for _, wid in ipairs(redis.call('ZRANGE', key('work', 'open'), 0, -1)) do
  if redis.call('HGET', key('work', wid), 'queue') == q then
    return {'conflict', 'name', 'queue ' .. q .. ' still has open work items (' .. wid .. '); let them finish first'}
  end
end
if redis.call('SCARD', key('queue', q, 'members')) > 0 then
  return {'conflict', 'name', 'queue ' .. q .. ' still has member agents; remove it from their queues first'}
end
settings_changed()
redis.call('ZREM', key('queues'), q)
-- remembered so that seeding from the center file does not bring it back
redis.call('SADD', key('queues', 'removed'), q)
redis.call('DEL', key('queue', q), key('queue', q, 'ready'), key('queue', q, 'members'), key('queue', q, 'waiting'))
emit({type = 'queue.removed', sup = 1, queue = q})
return {'ok'}
