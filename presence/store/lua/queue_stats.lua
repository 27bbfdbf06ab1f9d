-- queue_stats.lua: live figures of every queue for the wallboard. Read only.
-- The waiting set is ordered by priority band, then age, so the oldest item
-- is the oldest of each band's first: one lookup per band in use.
-- KEYS[1] center prefix
-- ARGV[1] now (ms)  ARGV[2] waiting items listed per queue (absent or 0: none)
-- Reply: msgpack list of {name, title, priority, waiting, oldest_created,
--        ready, members, logged_in, routable, service_level_seconds
--        [, items: the first waiting items, `waiting_list` in _lib_queue.lua]
--        [, open, changes_at, time_zone: for a queue with business hours]}
local limit = num(ARGV[2])
local out = {}
for _, q in ipairs(redis.call('ZRANGE', key('queues'), 0, -1, 'REV')) do
  local waiting = key('queue', q, 'waiting')
  local n = redis.call('ZCARD', waiting)
  local oldest = 0
  local from = '-inf'
  local guard = 0
  while n > 0 and guard < 200 do
    guard = guard + 1
    local first = redis.call('ZRANGEBYSCORE', waiting, from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    if #first == 0 then break end
    local score = tonumber(first[2])
    local created = score % 1e13
    if oldest == 0 or created < oldest then oldest = created end
    from = string.format('%.0f', (math.floor(score / 1e13) + 1) * 1e13)
  end
  local logged, routable = 0, 0
  for _, aid in ipairs(redis.call('SMEMBERS', key('queue', q, 'members'))) do
    local a = hmget(key('agent', aid), {'conns', 'routable'})
    if num(a.conns) > 0 then
      logged = logged + 1
      if a.routable == '1' then routable = routable + 1 end
    end
  end
  local h = hmget(key('queue', q), {'title', 'priority', 'service_level_seconds'})
  out[#out + 1] = {name = q, title = h.title or q, priority = num(h.priority), waiting = n,
                   oldest_created = oldest, ready = redis.call('ZCARD', key('queue', q, 'ready')),
                   members = redis.call('SCARD', key('queue', q, 'members')),
                   logged_in = logged, routable = routable,
                   service_level_seconds = num(h.service_level_seconds, 20)}
  if limit > 0 then out[#out].items = waiting_list(q, limit) end
  if plan_of(q) then
    -- business hours: open now or not, and when that changes (0: not within the plan)
    local open, change = queue_open(q, NOW)
    out[#out].open = open
    out[#out].changes_at = change
    local tz = redis.call('HGET', key('queue', q), 'time_zone')
    if tz and tz ~= '' then out[#out].time_zone = tz end
  end
end
if #out == 0 then return cmsgpack.pack({}) end
return cmsgpack.pack(out)
