-- queue_escalate.lua: overflow and skill relaxation of items that have
-- waited too long, run on a timer (presence/router/escalator.py). Each waiting item
-- of a queue with rules has one entry in timer:escalations at its next
-- check (set at intake by schedule_escalation in _lib_queue.lua), so a tick costs
-- the number of items due, never the number of agents or waiting items.
--   * relaxation: the queue's steps {after, lower, drop}, applied cumulatively
--     to the item's original required skills (kept as `req0`) once it has
--     waited `after` seconds; route.lua reads the relaxed `req`;
--   * overflow: after `overflow_after` seconds (or at once while no member of
--     the queue is signed in, with `overflow_when_unstaffed`) the item is
--     also indexed in the other queue's borrowed set; route.lua offers it to
--     that queue's agents too. It stays waiting in its own queue.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] most items per call
-- Reply: {queue to wake...}
local limit = num(ARGV[2], 500)
local T = key('timer', 'escalations')
local conf_cache, staffed_cache = {}, {}
local function conf(q)
  local c = conf_cache[q]
  if not c then
    local h = hmget(key('queue', q), {'overflow_to', 'overflow_after', 'overflow_when_unstaffed', 'relax'})
    c = {to = h.overflow_to or '', after = num(h.overflow_after), unstaffed = h.overflow_when_unstaffed == '1',
         relax = (h.relax and h.relax ~= '') and cmsgpack.unpack(h.relax) or {}}
    conf_cache[q] = c
  end
  return c
end
-- someone of the queue is signed in (computed once per queue per tick)
local function staffed(q)
  local s = staffed_cache[q]
  if s == nil then
    s = redis.call('ZCARD', key('queue', q, 'ready')) > 0
    if not s then
      for _, aid in ipairs(redis.call('SMEMBERS', key('queue', q, 'members'))) do
        if num(redis.call('HGET', key('agent', aid), 'conns')) > 0 then s = true break end
      end
    end
    staffed_cache[q] = s
  end
  return s
end

local woke, seen = {}, {}
local function wake(q)
  if not seen[q] then seen[q] = true woke[#woke + 1] = q end
end
for _, wid in ipairs(redis.call('ZRANGEBYSCORE', T, '-inf', NOW, 'LIMIT', 0, limit)) do
  local wk = key('work', wid)
  local it = hmget(wk, {'state', 'queue', 'created', 'req', 'req0', 'relax_step', 'ovf', 'score'})
  local st, q, created = it.state, it.queue, num(it.created)
  if st ~= 'queued' and st ~= 'offered' then
    redis.call('ZREM', T, wid)
  else
    local c = conf(q)
    local age = NOW - created
    local due = nil
    local function later(t) if not due or t < due then due = t end end
    local step = 0
    for i, s in ipairs(c.relax) do
      local at = created + math.floor(num(s.after) * 1000)
      if NOW >= at then step = i else later(at) break end
    end
    if step > num(it.relax_step) then
      -- relaxation starts from the original skills (req0), kept the first time
      if not it.req0 then redis.call('HSET', wk, 'req0', it.req or cmsgpack.pack({})) end
      local need = cmsgpack.unpack(it.req0 or it.req or cmsgpack.pack({}))
      for i = 1, step do
        local s = c.relax[i]
        for _, sk in ipairs(s.drop or {}) do need[sk] = nil end
        local lower = num(s.lower)
        if lower > 0 then
          for sk, lvl in pairs(need) do need[sk] = math.max(1, num(lvl) - lower) end
        end
      end
      redis.call('HSET', wk, 'req', cmsgpack.pack(need), 'relax_step', step)
      record({ev = 'relax', work = wid, queue = q, step = step, age = age}, wid)
      wake(q)
    end
    if c.to ~= '' and c.to ~= q and (not it.ovf or it.ovf == '') and redis.call('ZSCORE', key('queues'), c.to) then
      local at = c.after > 0 and created + math.floor(c.after * 1000) or nil
      local go = at ~= nil and NOW >= at
      if not go and c.unstaffed then
        go = not staffed(q)
        -- staffing can change while the item waits: look again shortly
        if not go then later(NOW + 1000) end
      end
      if go then
        redis.call('HSET', wk, 'ovf', c.to)
        if st == 'queued' then borrowed(wid, true, num(it.score)) end
        record({ev = 'overflow', work = wid, queue = q, to = c.to, age = age}, wid)
        wake(c.to)
      elseif at then
        later(at)
      end
    end
    if due then redis.call('ZADD', T, due, wid) else redis.call('ZREM', T, wid) end
  end
end
return woke
