-- _lib_presence.lua: an agent's presence: its status (`set_status`) and the
-- loss of one of its sockets (`drop_conn`). Last, because leaving a
-- routable status takes back the agent's open offers.
-- Relies on _lib_core.lua (key, num, hmget, NOW, record), _lib_agent.lua
-- (reindex, emit_agent) and _lib_work.lua (requeue).

-- Change an agent's status; rescind open offers when it stops being
-- routable (Break keeps work in hand, but no offer stays open).
-- Returns the list of queues that gained a ready agent or a waiting item.
local function set_status(aid, status, reason, routable, by)
  local ak = key('agent', aid)
  local prev = hmget(ak, {'status', 'reason', 'since'})
  redis.call('HSET', ak, 'status', status, 'reason', reason, 'since', NOW,
             'routable', routable and '1' or '0')
  if routable and prev.status ~= status then
    -- longest_idle counts from the moment the agent became available
    local idle = num(redis.call('HGET', ak, 'idle'))
    if idle == 0 then redis.call('HSET', ak, 'idle', NOW) end
  end
  redis.call('XADD', key('stream', 'status'), '*',
             'agent', aid, 'status', status, 'reason', reason, 'ts', NOW,
             'prev', prev.status or '', 'prev_since', prev.since or '0', 'by', by or aid)
  record({ev = 'status', agent = aid, status = status, reason = reason, by = by or aid})
  local woke = {}
  if not routable then
    for _, wid in ipairs(redis.call('SMEMBERS', ak .. ':offers')) do
      local q = requeue(wid, 'status')
      if q then woke[#woke + 1] = q end
    end
  end
  for _, q in ipairs(reindex(aid)) do woke[#woke + 1] = q end
  emit_agent(aid, 'status')
  return woke
end

-- One of the agent's sockets is gone (closed, or its process's lease ran
-- out). When it was the last one, the agent stops receiving offers and its
-- grace period starts now.
local function drop_conn(aid, grace)
  local ak = key('agent', aid)
  if redis.call('HINCRBY', ak, 'conns', -1) <= 0 then
    redis.call('HSET', ak, 'conns', 0)
    redis.call('ZADD', key('timer', 'graces'), NOW + grace, aid)
    reindex(aid)
    emit_agent(aid, 'status')
  end
end
