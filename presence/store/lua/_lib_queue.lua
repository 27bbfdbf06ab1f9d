-- _lib_queue.lua: items waiting in queues: the wait score that orders a
-- waiting set, new items (`create_item`), an item put (back) in a queue
-- (`enqueue`), overflow bookkeeping (the borrowed index and the
-- escalation timer), and the waiting list a supervisor reads (`waiting_list`).
-- Also a queue's business hours as the scripts see them (`queue_open`,
-- `closed_ms`, `intake_queue`).
-- Relies on _lib_core.lua (key, num, hmget, NOW, ARGV, batch_calls, record, on_enter,
-- history_fields),
-- _lib_config.lua (channel, channels, queue_conf) and _lib_case.lua (case_enqueued).

-- Business hours: a queue's plan (field `plan`, presence/hours.py) is
-- {open at the start (1/0), start, t1, t2, ...}: its state flips at each t.
-- No plan: always open. Kept with the queue's settings (queue_conf,
-- _lib_config.lua): queue_put.lua and queue_plan.lua, its writers, make
-- them stale.
local function plan_of(q)
  local c = queue_conf(q)
  local p = c.plan
  if p == nil then
    local raw = c.plan_raw
    p = false
    if raw and raw ~= '' then
      local ok, v = pcall(cmsgpack.unpack, raw)
      if ok and type(v) == 'table' and #v >= 2 then p = v end
    end
    c.plan = p
  end
  return p
end

-- Whether queue `q` is open at `at` (ms), and when that next changes (0: not
-- within the plan).
local function queue_open(q, at)
  local p = plan_of(q)
  if not p then return true, 0 end
  local open = p[1] == 1
  for i = 3, #p do
    if p[i] > at then return open, p[i] end
    open = not open
  end
  return open, 0
end

-- How long queue `q` was closed within [t0, t1) (ms): the part of a wait
-- that service level and ASA leave out (hours.closed_ms is the reference).
local function closed_ms(q, t0, t1)
  local p = plan_of(q)
  if not p or t1 <= t0 then return 0 end
  local open, total, seg = p[1] == 1, 0, t0
  for i = 3, #p do
    local t = p[i]
    if t > seg then
      local stop = math.min(t, t1)
      if not open then total = total + stop - seg end
      seg = stop
      if seg >= t1 then return total end
    end
    open = not open
  end
  if not open and seg < t1 then total = total + t1 - seg end
  return total
end

-- How long item `wid` of queue `q` waited while `q` was closed (since its
-- `created`, as the KPIs count its wait), or nil for none: recorded as
-- `paused` on its accept and abandon events.
local function paused(wid, q)
  if not plan_of(q) then return nil end
  local ms = closed_ms(q, num(redis.call('HGET', key('work', wid), 'created'), NOW), NOW)
  if ms > 0 then return ms end
  return nil
end

-- Where a new item of channel `ch` aimed at `q` goes now: `q` while it is
-- open; outside its hours what its rule says: keep queuing ("queue"), the
-- `after_hours_queue` ("overflow", one hop, when that queue exists), or for
-- voice a refusal carrying the message the IVR speaks ("refuse").
-- Returns the queue, or nil and the error reply.
local function intake_queue(q, ch)
  if not plan_of(q) or queue_open(q, NOW) then return q end
  local h = hmget(key('queue', q), {'after_hours', 'after_hours_queue', 'closed_message'})
  if h.after_hours == 'overflow' and h.after_hours_queue and h.after_hours_queue ~= ''
     and redis.call('ZSCORE', key('queues'), h.after_hours_queue) then
    return h.after_hours_queue
  end
  if h.after_hours == 'refuse' and ch == 'voice' then
    local msg = h.closed_message
    if not msg or msg == '' then msg = 'queue ' .. q .. ' is closed' end
    return nil, {'closed', 'queue', msg}
  end
  return q
end

-- A waiting item's score: higher priority first, then oldest first. Priority
-- is limited to -99..99 so the score stays an exact integer below 2^53.
local function wait_score(priority, created)
  return (100 - priority) * 1e13 + created
end

-- Queues whose borrowed set this call found empty (`create_item`), until an
-- item is added to it (`borrowed`, its one writer): the router need not look.
local unborrowed
on_enter(function() unborrowed = {} end)
local function has_no_borrowed(q)
  return unborrowed[q] == true
end

-- Queues whose waiting and borrowed sets this call has read already, in
-- an EXISTS made for something else: true when both were empty, false when
-- not. Read by a lone intake with its item (`made_before`) and by a
-- completion with its item's rare records (`retain`); forgotten at the
-- first write of either set (`waiting_changed`, at each of their writers)
-- and taken once, by the next look at the queue instead of its own EXISTS:
-- the intake's (`queue_empty`) or the router's. One cache for the one fact.
local idle_read
on_enter(function() idle_read = {} end)
local function waiting_changed(q)
  idle_read[q] = nil
end
local function take_idle(q)
  local v = idle_read[q]
  idle_read[q] = nil
  return v
end

-- Overflow: an item that overflowed (field `ovf` names the other queue) is
-- indexed in that queue's borrowed set while it waits, so route.lua offers
-- it to that queue's agents too. Call whenever an item enters (add) or
-- leaves (not add) its waiting set.
local function borrowed(wid, add, score)
  local ovf = redis.call('HGET', key('work', wid), 'ovf')
  if not ovf or ovf == '' then return nil end
  if add then
    unborrowed[ovf] = nil
    waiting_changed(ovf)
    redis.call('ZADD', key('queue', ovf, 'borrowed'), score, wid)
  else
    redis.call('ZREM', key('queue', ovf, 'borrowed'), wid)
  end
  return ovf
end

-- Schedule the first overflow/relaxation check of an item that starts
-- waiting in `q` (queue field `escalate_at`: seconds, absent = no rules).
local function schedule_escalation(wid, q, since)
  local at = queue_conf(q).escalate_at
  if at and at >= 0 then
    redis.call('ZADD', key('timer', 'escalations'), since + math.floor(at * 1000), wid)
  end
end

-- Put a (released or re-opened) item in queue `q`'s waiting set.
local function enqueue(wid, q, since)
  local wk = key('work', wid)
  local it = hmget(wk, {'priority', 'created'})
  local score = wait_score(num(it.priority), num(it.created, NOW))
  redis.call('HSET', wk, 'state', 'queued', 'agent', '', 'queue', q, 'score', score, 'expires', 0)
  waiting_changed(q)
  redis.call('ZADD', key('queue', q, 'waiting'), score, wid)
  borrowed(wid, true, score)
  schedule_escalation(wid, q, since or num(it.created, NOW))
  case_enqueued(wid, q)
end

-- The error reply for an item aimed at a queue or channel that does not
-- exist (checked before anything is stored), else nil.
local function unknown_target(q, ch)
  if not queue_conf(q).prio then
    return {'invalid', 'queue', 'unknown queue ' .. q}
  end
  if not channels()[ch] then
    return {'invalid', 'channel', 'unknown channel ' .. ch}
  end
  return nil
end

-- The items this call made (`create_item`): the fields the router reads
-- of an item (ITEM in _lib_router.lua), as they were written, so an intake
-- routed in its own call reads nothing of its item back. Nothing else
-- changes such an item before the router takes it (a batch of intakes
-- makes only its own items).
local made
on_enter(function() made = {} end)
local function made_item(wid)
  return made[wid]
end

-- New items that the same call routes (an intake batch routed inline,
-- `defer_new_items`) whose queue had nobody waiting and nothing borrowed
-- (an empty waiting set is then the whole page): they are kept out of
-- their waiting set until the router has seen them (`deferred`), so an item
-- taken at once is never added and removed again. The router reads them as
-- the page it would have read (the whole waiting set then), and `place`
-- adds the ones it did not take, before anything else reads the set; the
-- call places every one left at its end (`place_all`), whatever happened.
-- Such an item's record is not written either until the router is done
-- with it (`unwritten`: its fields, in HSET order): the offer or the
-- assignment writes it whole with its own fields (`write_item`), or `place`
-- does. Until then nothing of the call reads it: the router has it from
-- `made_item`, and a `paused` read of its `created` finds none and takes
-- NOW, which is what it holds.
local deferring, deferred, unplaced, unwritten
-- queues whose deferred items are in order since their last one was added:
-- the router asks for them a few times per pass, and sorting them once is enough
local in_order
on_enter(function() deferring, deferred, unplaced, unwritten, in_order = false, {}, {}, {}, {} end)
local function defer_new_items()
  deferring = true
end
-- Whether this call routes what it changed itself (route_inline_begin).
local function routes_inline()
  return deferring
end
-- queue -> its deferred items {wid, score}, in the set's order, or nil
local function deferred_of(q)
  local d = deferred[q]
  if d and not in_order[q] then
    table.sort(d, function(a, b)
      if a.score ~= b.score then return a.score < b.score end
      return a.wid < b.wid
    end)
    in_order[q] = true
  end
  return d
end
-- Write item `wid`'s record: the fields `set` (a list of name, value), over
-- those of its creation when that is not written yet.
-- Either write carries the item's history fields of the call (`history_fields`).
local function write_item(wid, set)
  local base = unwritten[wid]
  if not base then
    redis.call('HSET', key('work', wid), unpack(history_fields(wid, set)))
    return
  end
  unwritten[wid] = nil
  local at = {}
  for i = 1, #base, 2 do at[base[i]] = i end
  for i = 1, #set, 2 do
    local j = at[set[i]]
    if j then
      base[j + 1] = set[i + 1]
    else
      base[#base + 1] = set[i]
      base[#base + 1] = set[i + 1]
      at[set[i]] = #base - 1
    end
  end
  redis.call('HSET', key('work', wid), unpack(history_fields(wid, base)))
end

-- Add queue `q`'s deferred items to its waiting set but those in `taken`
-- (and write every record still unwritten).
local function place(q, taken)
  local d = deferred[q]
  if not d then return end
  local args = {}
  for _, e in ipairs(d) do
    local base = unwritten[e.wid]
    if base then
      unwritten[e.wid] = nil
      redis.call('HSET', key('work', e.wid), unpack(history_fields(e.wid, base)))
    end
    if not (taken and taken[e.wid]) then
      args[#args + 1] = e.score
      args[#args + 1] = e.wid
    end
    unplaced[e.wid] = nil
  end
  if #args > 0 then
    waiting_changed(q)
    redis.call('ZADD', key('queue', q, 'waiting'), unpack(args))
  end
  deferred[q] = nil
end
local function place_all()
  for q in pairs(deferred) do place(q) end
end
-- Whether item `wid` is deferred, not in its waiting set (the router then
-- has nothing to remove).
local function is_unplaced(wid)
  return unplaced[wid] == true
end

-- Whether item `wid`, named by its intake call (work_create.lua: ARGV[2],
-- and its queue ARGV[3]), exists already: the server makes each id once,
-- so only a second run of that very call (redis-py's retry of a call whose
-- reply was lost) finds it. One EXISTS of every item of the batch answers
-- for all of them when none exists, which is every batch but a retried
-- one; then one EXISTS each. An intake alone in its call reads its queue's
-- waiting and borrowed sets in the same EXISTS, for `create_item`
-- (`queue_empty`, through `idle_read`).
local batch_fresh
on_enter(function() batch_fresh = false end)
local function made_before(wid)
  if batch_fresh then return false end
  local calls = batch_calls or {ARGV}
  local keys = {}
  for i, call in ipairs(calls) do keys[i] = key('work', call[2] or '') end
  local alone = #calls == 1 and calls[1][2] == wid
  local q = alone and calls[1][3]
  if q then
    keys[2], keys[3] = key('queue', q, 'waiting'), key('queue', q, 'borrowed')
  end
  local n = redis.call('EXISTS', unpack(keys))
  if n == 0 then
    batch_fresh = true
    if q then idle_read[q] = true end
    return false
  end
  if q then
    -- the item, or the queue's sets: which one
    local made = redis.call('EXISTS', keys[1]) == 1
    if not made then idle_read[q] = false end
    return made
  end
  return redis.call('EXISTS', key('work', wid)) == 1
end
-- Whether queue `q` has nothing waiting and nothing borrowed (one EXISTS,
-- unless this call read it already: `idle_read`, taken once).
local function queue_empty(q)
  local known = take_idle(q)
  if known ~= nil then return known end
  return redis.call('EXISTS', key('queue', q, 'waiting'), key('queue', q, 'borrowed')) == 0
end

-- The required skills of an item that needs none: an empty msgpack map
-- (as the server packs it) or array (as cmsgpack packs an empty table).
local NO_SKILLS = {[''] = true, ['\128'] = true, ['\144'] = true}
-- A new item, queued in `q` (work_create.lua, case_intake.lua).
local function create_item(wid, q, ch, prio, data, req, idem)
  local score = wait_score(prio, NOW)
  local weight = channel(ch).weight
  -- (no `expires`, no `idem` without a key, no `req` without skills and
  -- no `priority` of 0: an absent field reads as 0 or none, to every
  -- reader; no `id`, which the key names: Store.work_view and
  -- agent_snapshot put it back, and take it from the records written before)
  if not req or NO_SKILLS[req] then req = false end
  local fields = {'queue', q, 'channel', ch, 'weight', weight, 'score', score, 'state', 'queued',
                  'agent', '', 'created', NOW, 'data', data}
  if prio ~= 0 then
    fields[#fields + 1] = 'priority'
    fields[#fields + 1] = prio
  end
  if req then
    fields[#fields + 1] = 'req'
    fields[#fields + 1] = req
  end
  if idem and idem ~= '' then
    fields[#fields + 1] = 'idem'
    fields[#fields + 1] = idem
  end
  -- an absent field reads false, as `hmget` has it
  made[wid] = {channel = ch, weight = weight, req = req, missed_by = false, data = data, queue = q,
               ovf = false, handoff = false, created = NOW, offers = false}
  local waiting = key('queue', q, 'waiting')
  -- (one EXISTS: nobody waiting, and nothing borrowed for the router to read)
  if deferring and not deferred[q] and queue_empty(q) then
    unborrowed[q] = true
    deferred[q] = {}
  end
  if deferring and deferred[q] then
    deferred[q][#deferred[q] + 1] = {wid = wid, score = score}
    in_order[q] = nil
    unplaced[wid], unwritten[wid] = true, fields
  else
    redis.call('HSET', key('work', wid), unpack(fields))
    waiting_changed(q)
    redis.call('ZADD', waiting, score, wid)
  end
  redis.call('ZADD', key('work', 'open'), NOW, wid)
  -- (counted by its `create` record: `count`, _lib_core.lua)
  record({ev = 'create', queue = q, channel = ch, work = wid, priority = prio}, wid)
  schedule_escalation(wid, q, NOW)
end

-- The first `limit` items waiting in queue `q`, in the order the router
-- takes them (priority band, then age), with what a supervisor needs to
-- pick one: channel, priority, when it arrived, the subject and who the
-- customer is (only the short fields of the posted customer, never the
-- payload). Read only (queue_stats.lua, queue_waiting.lua).
local WAITING_CUSTOMER = {'id', 'name', 'phone', 'email'}
-- At most `n` bytes of `s`, never cutting a UTF-8 character in two (the
-- reply is decoded as UTF-8).
local function clip(s, n)
  if #s <= n then return s end
  local cut = n + 1
  while cut > 1 and string.byte(s, cut) >= 0x80 and string.byte(s, cut) < 0xC0 do cut = cut - 1 end
  return string.sub(s, 1, cut - 1)
end
local function waiting_list(q, limit)
  local out = {}
  if limit <= 0 then return out end
  for _, wid in ipairs(redis.call('ZRANGE', key('queue', q, 'waiting'), 0, limit - 1)) do
    local it = hmget(key('work', wid), {'channel', 'priority', 'created', 'data', 'ovf', 'handoff'})
    local row = {work_id = wid, channel = it.channel or '', priority = num(it.priority),
                 created = num(it.created)}
    -- (a missing field reads as false, not nil)
    if it.ovf and it.ovf ~= '' then row.overflow_to = it.ovf end
    if it.handoff and it.handoff ~= '' then row.handed_over = true end
    local ok, data = pcall(cmsgpack.unpack, it.data or '')
    if ok and type(data) == 'table' then
      local s = data.subject
      if type(s) == 'string' and s ~= '' then row.subject = clip(s, 200) end
      local c = data.customer
      if type(c) == 'table' then
        local who, any = {}, false
        for _, f in ipairs(WAITING_CUSTOMER) do
          local v = c[f]
          if type(v) == 'string' and v ~= '' then who[f] = clip(v, 200) any = true
          elseif type(v) == 'number' then who[f] = v any = true end
        end
        if any then row.customer = who end
      end
    end
    out[#out + 1] = row
  end
  return out
end
