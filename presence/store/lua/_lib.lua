-- _lib.lua: helpers shared by every script. store/scripts.py loads this file
-- once, with every script, as one Redis function library: each script is a
-- function of the library, called with FCALL, so these helpers are defined
-- once per library load instead of once per call (as a prefix of an EVAL
-- script they cost ~90,000 instructions, 20-30 us, on every call). Each
-- function first calls `enter`, which sets the call's KEYS, ARGV, clock and
-- prefix and resets every per-call cache below: nothing may carry over from
-- one call to the next except constants. (Prepended to a script with a call
-- of `enter(KEYS, ARGV)`, the same file also runs as an EVAL script:
-- `script_source`.)
--
-- Conventions for every script:
--   KEYS[1]  the center prefix "presence:{<center>}:". Every key a script
--            touches is built from it (names as in store/keys.py), so all of
--            them share the center's hash tag and lie in one cluster slot.
--   ARGV[1]  now, in milliseconds since the epoch (the caller's clock, so
--            tests can drive time and every process agrees on one clock).
-- Replies are arrays whose first element is "ok" or an error code
-- (not_found, not_yours, conflict, invalid); store/scripts.py maps them.

-- the call's arguments, center prefix, clock and events channel (`enter`)
local KEYS, ARGV, P, NOW, EVENTS
-- The history streams are trimmed by time (PRESENCE_HISTORY_DAYS) by
-- presence/kpi/rollup.py, never before their hours are rolled up; this cap
-- is only a last guard against a center whose roll-up never runs.
local LOG_MAX = 50000000

-- Hot: tens of calls per assignment, so the usual one to three parts are
-- joined without building a table.
local function key(a, b, c, ...)
  if c == nil then
    if b == nil then return P .. a end
    return P .. a .. ':' .. b
  end
  if select('#', ...) == 0 then return P .. a .. ':' .. b .. ':' .. c end
  return P .. table.concat({a, b, c, ...}, ':')
end

local function num(v, default)
  return tonumber(v) or default or 0
end

-- A waiting item's score: higher priority first, then oldest first. Priority
-- is limited to -99..99 so the score stays an exact integer below 2^53.
local function wait_score(priority, created)
  return (100 - priority) * 1e13 + created
end

-- Publish one event to every process. The message is a msgpack array of the
-- header map and, when given, the item's stored msgpack blob spliced in as is:
-- customer text is never decoded or re-encoded by Lua.
--
-- A script that makes many changes (route.lua, the batched variants of
-- store/scripts.py) collects its events between events_begin() and
-- events_publish() and publishes them as ONE message, a msgpack array of
-- such arrays: each process then reads one pub/sub message per call instead
-- of one per event, which was a large share of its CPU under load.
local pending_events = nil
local function emit(hdr, blob)
  local msg
  if blob then
    msg = '\146' .. cmsgpack.pack(hdr) .. blob
  else
    msg = '\145' .. cmsgpack.pack(hdr)
  end
  if pending_events then
    pending_events[#pending_events + 1] = msg
  else
    redis.call('PUBLISH', EVENTS, msg)
  end
end
-- Counter increments (the `metrics` and `stats` hashes) made between
-- events_begin() and events_publish() are summed per field and written
-- once, at events_publish: a route of 20 items makes a few HINCRBYs, not a
-- hundred. Under load these were a third of the commands each assignment
-- wrote to the append-only file. Like the events, they are lost only if
-- the script fails outright (a bug), which no caller may rely on.
local pending_bumps = nil
local function bump(k, field, n)
  if pending_bumps then
    local h = pending_bumps[k]
    if not h then
      h = {}
      pending_bumps[k] = h
    end
    h[field] = (h[field] or 0) + n
  else
    redis.call('HINCRBY', k, field, n)
  end
end
local function events_begin()
  pending_events = {}
  pending_bumps = {}
end
local function events_publish()
  for k, h in pairs(pending_bumps) do
    for field, n in pairs(h) do redis.call('HINCRBY', k, field, n) end
  end
  pending_bumps = nil
  local n = #pending_events
  if n == 1 then
    redis.call('PUBLISH', EVENTS, pending_events[1])
  elseif n > 1 then
    local head  -- msgpack array header: fixarray, array 16 or array 32
    if n < 16 then
      head = string.char(0x90 + n)
    elseif n < 65536 then
      head = '\220' .. string.char(math.floor(n / 256), n % 256)
    else
      head = '\221' .. string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                                   math.floor(n / 256) % 256, n % 256)
    end
    redis.call('PUBLISH', EVENTS, head .. table.concat(pending_events))
  end
  pending_events = nil
end

-- The Prometheus counters (hash `metrics`, read by presence/kpi/counters.py
-- for /metrics), counted by the same call that records the event, so each
-- event counts exactly once whichever process made it. Fields:
-- `<counter>|<queue>|<channel>`, and for each routed assignment (an accepted
-- offer or an auto-assignment) the time since the item arrived (intake or
-- re-opening) in the histogram `lat|<queue>|<le>` (non-cumulative buckets),
-- and `latsum|<queue>` (ms); the count is the buckets' sum.
local COUNTED = {create = 'created', reopen = 'created', offer = 'offered', accept = 'assigned',
                 decline = 'declined', rescind = 'rescinded', complete = 'completed',
                 abandon = 'abandoned'}
-- upper bounds in ms, and their names (seconds, as counters.BUCKETS)
local LAT_MS = {50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000, 300000,
                600000, 1800000, 3600000}
local LAT_LE = {'0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '30', '60', '120', '300',
                '600', '1800', '3600'}
-- arrival times the caller already read (route.lua), so `count` need not
-- read them again
local created_of = {}
local function count(ev, wid)
  local name = COUNTED[ev.ev]
  if not name then return end
  local mk = key('metrics')
  local q = ev.queue or ''
  bump(mk, name .. '|' .. q .. '|' .. (ev.channel or ''), 1)
  -- other ways of taking an item (a pull, a forced push) are not routing
  if ev.ev == 'accept' and wid and (ev.via == 'accept' or ev.via == 'auto') then
    local created = tonumber(created_of[wid] or redis.call('HGET', key('work', wid), 'created'))
    if created then
      local ms = math.max(0, NOW - created)
      local le = '+Inf'
      for i = 1, #LAT_MS do
        if ms <= LAT_MS[i] then le = LAT_LE[i] break end
      end
      bump(mk, 'lat|' .. q .. '|' .. le, 1)
      bump(mk, 'latsum|' .. q, ms)
    end
  end
end

-- Append to the center's event stream (for reports) and, for an item, to
-- that item's own history, and count it. `ev` holds only strings and numbers.
local function record(ev, wid)
  count(ev, wid)
  ev.ts = NOW
  local args = {}
  for f, v in pairs(ev) do
    args[#args + 1] = f
    args[#args + 1] = tostring(v)
  end
  redis.call('XADD', key('stream', 'events'), 'MAXLEN', '~', LOG_MAX, '*', unpack(args))
  if wid then
    redis.call('RPUSH', key('work', wid, 'history'), cmsgpack.pack(ev))
  end
end

-- Outbound webhooks (presence/webhooks.py): append an event to the stream
-- of every webhook subscribed to its type, in the same atomic call as the
-- change it reports, so no event is lost between the two. The item's stored
-- blob rides along untouched (field `i`), like the pub/sub events.
local hooks_of
local HOOK_MAX = 1000000
local function load_hooks()
  if not hooks_of then
    hooks_of = {}
    local h = redis.call('HGETALL', key('webhooks'))
    for i = 1, #h, 2 do hooks_of[h[i]] = cmsgpack.unpack(h[i + 1]) end
  end
  return hooks_of
end
-- Does any webhook want events of this type? (Callers on the hot path
-- check first, so they read nothing extra when no webhook listens.)
local function hooked(kind)
  for _, events in pairs(load_hooks()) do
    for _, e in ipairs(events) do
      if e == kind or e == '*' then return true end
    end
  end
  return false
end
local function hook(kind, hdr, blob)
  load_hooks()
  local packed
  for name, events in pairs(hooks_of) do
    for _, e in ipairs(events) do
      if e == kind or e == '*' then
        if not packed then
          hdr.type = kind
          hdr.ts = NOW
          packed = cmsgpack.pack(hdr)
        end
        if blob then
          redis.call('XADD', key('webhook', name), 'MAXLEN', '~', HOOK_MAX, '*', 'h', packed, 'i', blob)
        else
          redis.call('XADD', key('webhook', name), 'MAXLEN', '~', HOOK_MAX, '*', 'h', packed)
        end
        break
      end
    end
  end
end

-- A case's public fields (presence/cases.py documents them).
local CASE_NUM = {created = true, first_response = true, closed = true, updated = true, reopened = true}
local function case_view(wid)
  local h = redis.call('HGETALL', key('case', wid))
  if #h == 0 then return nil end
  local c = {work_id = wid}
  for i = 1, #h, 2 do
    if CASE_NUM[h[i]] then c[h[i]] = tonumber(h[i + 1]) else c[h[i]] = h[i + 1] end
  end
  c.lead = c.lead == '1'
  return c
end

-- Tell the item's holder (when there is one) that its case changed.
local function case_updated(wid, to)
  local c = case_view(wid)
  if c and to and to ~= '' then
    emit({type = 'case.updated', to = to, work_id = wid, case = c})
  end
  return c
end

-- Set a case's status; reports it to the holder and to the webhooks.
local function case_set_status(wid, status, by)
  local ck = key('case', wid)
  local cfg = redis.call('HMGET', key('cases', 'config'), 'closed')
  local prev = redis.call('HGET', ck, 'status')
  if prev == status then return false end
  redis.call('HSET', ck, 'status', status, 'updated', NOW)
  if status == cfg[1] then
    redis.call('HSET', ck, 'closed', NOW)
  elseif prev == cfg[1] then
    redis.call('HSET', ck, 'closed', 0)
    redis.call('HINCRBY', ck, 'reopened', 1)
  end
  local q = redis.call('HGET', ck, 'queue') or ''
  record({ev = 'case.status', work = wid, status = status, prev = prev or '', by = by, queue = q}, wid)
  hook('case.status', {work_id = wid, status = status, prev = prev or '', by = by})
  return true
end

-- The item's history entries, decoded (for an offer after a handoff).
local function history_of(wid)
  local out = {}
  for _, raw in ipairs(redis.call('LRANGE', key('work', wid, 'history'), -200, -1)) do
    out[#out + 1] = cmsgpack.unpack(raw)
  end
  return out
end

-- Overflow: an item that overflowed (field `ovf` names the other queue) is
-- indexed in that queue's borrowed set while it waits, so route.lua offers
-- it to that queue's agents too. Call whenever an item enters (add) or
-- leaves (not add) its waiting set.
local function borrowed(wid, add, score)
  local ovf = redis.call('HGET', key('work', wid), 'ovf')
  if not ovf or ovf == '' then return nil end
  if add then
    redis.call('ZADD', key('queue', ovf, 'borrowed'), score, wid)
  else
    redis.call('ZREM', key('queue', ovf, 'borrowed'), wid)
  end
  return ovf
end

-- Schedule the first overflow/relaxation check of an item that starts
-- waiting in `q` (queue field `escalate_at`: seconds, absent = no rules).
local function schedule_escalation(wid, q, since)
  local at = redis.call('HGET', key('queue', q), 'escalate_at')
  if at and tonumber(at) and tonumber(at) >= 0 then
    redis.call('ZADD', key('timer', 'escalations'), since + math.floor(tonumber(at) * 1000), wid)
  end
end

local strategy_cache = {}
local function strategy(q)
  local s = strategy_cache[q]
  if not s then
    s = redis.call('HGET', key('queue', q), 'strategy') or 'most_available'
    strategy_cache[q] = s
  end
  return s
end

local channel_cache = {}
-- weight and per-agent cap of a channel
local function channel(ch)
  local c = channel_cache[ch]
  if not c then
    local raw = redis.call('HGET', key('channels'), ch)
    if raw then
      local t = cmsgpack.unpack(raw)
      c = {num(t.weight, 10), num(t.cap, 0)}
    else
      c = {10, 0}
    end
    channel_cache[ch] = c
  end
  return c
end

-- An agent's public view, sent to its own sockets and to supervisors.
-- It reads only the fields it shows (HMGET), not the whole agent hash with
-- its skills and queues: the per-channel counts are the `c:<channel>`
-- fields of the center's channels, listed once per call.
local VIEW_BASE = {'status', 'reason', 'name', 'since', 'load', 'ver', 'idle', 'cap', 'n', 'conns'}
local VIEW_FIELDS  -- VIEW_BASE and the center's channels' `c:<channel>` (per call)
local view_channels
local function channels_of_view()
  if not view_channels then
    view_channels = redis.call('HKEYS', key('channels'))
    for _, ch in ipairs(view_channels) do VIEW_FIELDS[#VIEW_FIELDS + 1] = 'c:' .. ch end
  end
  return view_channels
end

-- `rec`: an agent's fields by name, as `touch_agent` returns them; without
-- it the fields are read.
local function view(aid, rec)
  local chans = channels_of_view()
  local a = rec
  if not a then
    a = {}
    local raw = redis.call('HMGET', key('agent', aid), unpack(VIEW_FIELDS))
    for i, f in ipairs(VIEW_FIELDS) do a[f] = raw[i] end
  end
  local by = {}
  for _, ch in ipairs(chans) do
    local n = tonumber(a['c:' .. ch])
    if n and n > 0 then by[ch] = n end
  end
  return {agent_id = aid, by_channel = by, capacity = num(a.cap), load = num(a.load), items = num(a.n),
          connected = num(a.conns) > 0, ver = num(a.ver), status = a.status or 'Offline',
          reason = a.reason or '', since = num(a.since), name = a.name or aid, idle_since = num(a.idle)}
end

-- Tell the agent's sockets and the wallboards what changed. `kind` is the
-- message type the agent sees ("status" or "load").
local function emit_agent(aid, kind)
  redis.call('HINCRBY', key('agent', aid), 'ver', 1)
  local v = view(aid)
  v.type = kind
  v.to = aid
  v.sup = 1
  emit(v)
end

-- An event about an item of `aid` that also changed the agent's load
-- (offer, offer.rescinded, work.assigned, work.updated): it carries the
-- agent's new view in `agent`, so one event replaces the item event plus a
-- `load`; supervisors get the view from it (hub.py coalesces it by `ver`).
-- Call it after the load changed; with `rec` from `touch_agent` (which
-- already counted this event in `ver`) nothing is read or written.
local function emit_item(hdr, aid, blob, rec)
  if not rec then redis.call('HINCRBY', key('agent', aid), 'ver', 1) end
  hdr.agent = view(aid, rec)
  hdr.sup = 1
  emit(hdr, blob)
end

-- Keep the agent in (or out of) the ready index of each of its queues. An
-- agent is indexed while its status is routable, at least one socket is
-- live and it has room left; the score orders candidates for the queue's
-- strategy, lowest first, so the router never scans agents who cannot take
-- work and never sorts at decision time. `rec` as for `view`.
local function reindex(aid, rec)
  local a = rec
  if not a then
    local raw = redis.call('HMGET', key('agent', aid), 'routable', 'conns', 'cap', 'load', 'n', 'idle', 'queues')
    a = {routable = raw[1], conns = raw[2], cap = raw[3], load = raw[4], n = raw[5], idle = raw[6],
         queues = raw[7]}
  end
  local ok = a.routable == '1' and num(a.conns) > 0
  local free = num(a.cap) - num(a.load)
  local queues = a.queues and cmsgpack.unpack(a.queues) or {}
  local woke = {}
  for _, q in ipairs(queues) do
    local ready = key('queue', q, 'ready')
    if ok and free > 0 then
      local s = strategy(q)
      local score
      if s == 'least_active' then
        score = num(a.n)
      elseif s == 'longest_idle' then
        -- an agent with work in hand is not idle: after everyone who is
        -- (1e15 keeps the ms score an exact integer)
        score = num(a.idle)
        if num(a.n) > 0 then score = score + 1e15 end
      else
        score = -free
      end
      redis.call('ZADD', ready, score, aid)
      woke[#woke + 1] = q
    else
      redis.call('ZREM', ready, aid)
    end
  end
  return woke
end

-- Add (delta = 1) or release (delta = -1) an item's capacity on an agent,
-- with the `set` fields (name -> value) and one more `ver`, in one read and
-- one write of the agent's hash; returns the agent's fields after the
-- change, from which `view`, `emit_item` and `reindex` need read nothing
-- (pass it to both: its `ver` already counts the event). This took seven
-- calls on the agent hash, and four commands in the AOF, where it now takes
-- two and one (docs/PERFORMANCE.md, third pass).
local function touch_agent(aid, ch, weight, delta, set)
  channels_of_view()
  local ak = key('agent', aid)
  local cf = 'c:' .. ch
  local names = {'routable', 'queues', cf}
  for _, f in ipairs(VIEW_FIELDS) do names[#names + 1] = f end
  local raw = redis.call('HMGET', ak, unpack(names))
  local a = {}
  for i, f in ipairs(names) do a[f] = raw[i] end
  a.load = num(a.load) + weight * delta
  a.n = num(a.n) + delta
  a[cf] = num(a[cf]) + delta
  a.ver = num(a.ver) + 1
  local out = {'load', a.load, 'n', a.n, cf, a[cf], 'ver', a.ver}
  for f, v in pairs(set or {}) do
    a[f] = v
    out[#out + 1] = f
    out[#out + 1] = v
  end
  redis.call('HSET', ak, unpack(out))
  return a
end

-- Put an offered item back in its queue with its original age.
-- Returns the queue name so the caller can wake the dispatcher.
local function requeue(wid, reason, decliner, note)
  local wk = key('work', wid)
  local it = redis.call('HMGET', wk, 'agent', 'channel', 'weight', 'queue', 'score', 'state')
  local aid, ch, w, q, score = it[1], it[2], num(it[3]), it[4], it[5]
  if it[6] ~= 'offered' then return nil end
  redis.call('SREM', key('agent', aid, 'offers'), wid)
  redis.call('ZREM', key('timer', 'offers'), wid)
  local rec = touch_agent(aid, ch, w, -1)
  if decliner then
    redis.call('SADD', key('work', wid, 'declined'), aid)
  end
  redis.call('HSET', wk, 'state', 'queued', 'agent', '', 'expires', 0)
  redis.call('HDEL', wk, 'offered_at')
  redis.call('ZADD', key('queue', q, 'waiting'), score, wid)
  borrowed(wid, true, score)
  emit_item({type = 'offer.rescinded', to = aid, work_id = wid, reason = reason}, aid, nil, rec)
  record({ev = reason == 'declined' and 'decline' or 'rescind', reason = reason, agent = aid,
          queue = q, channel = ch, work = wid, note = note or ''}, wid)
  reindex(aid, rec)
  return q
end

-- Change an agent's status; rescind open offers when it stops being
-- routable (Break keeps work in hand, but no offer stays open).
-- Returns the list of queues that gained a ready agent or a waiting item.
local function set_status(aid, status, reason, routable, by)
  local ak = key('agent', aid)
  local prev = redis.call('HMGET', ak, 'status', 'reason', 'since')
  redis.call('HSET', ak, 'status', status, 'reason', reason, 'since', NOW,
             'routable', routable and '1' or '0')
  if routable and prev[1] ~= status then
    -- longest_idle counts from the moment the agent became available
    local idle = num(redis.call('HGET', ak, 'idle'))
    if idle == 0 then redis.call('HSET', ak, 'idle', NOW) end
  end
  redis.call('XADD', key('stream', 'status'), 'MAXLEN', '~', LOG_MAX, '*',
             'agent', aid, 'status', status, 'reason', reason, 'ts', NOW,
             'prev', prev[1] or '', 'prev_since', prev[3] or '0', 'by', by or aid)
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

local function status_def(status)
  local raw = redis.call('HGET', key('statuses'), status)
  if not raw then return nil end
  return cmsgpack.unpack(raw)
end

local function rule(name, default)
  return redis.call('HGET', key('rules'), name) or default
end

-- Make the item the agent's (accepted offer or auto-accept).
-- With `rec` (auto-accept: the caller took the capacity with `touch_agent`
-- in the same call, `missed` set to 0), the event carries the agent's new
-- view (emit_item). `data` is the item's stored blob when the caller
-- already read it.
local function assign(wid, aid, q, ch, via, rec, data)
  local wk = key('work', wid)
  data = data or redis.call('HGET', wk, 'data')
  if via == 'auto' then
    -- straight from the queue (route.lua): never offered, so no open offer
    -- or offer timer to clear
    redis.call('HSET', wk, 'state', 'assigned', 'agent', aid, 'offered_at', NOW, 'accepted_at', NOW,
               'expires', 0)
  else
    redis.call('HSET', wk, 'state', 'assigned', 'agent', aid, 'accepted_at', NOW, 'expires', 0)
    redis.call('SREM', key('agent', aid, 'offers'), wid)
    redis.call('ZREM', key('timer', 'offers'), wid)
  end
  redis.call('SADD', key('agent', aid, 'work'), wid)
  if not rec then redis.call('HSET', key('agent', aid), 'missed', 0) end
  local hdr = {type = 'work.assigned', to = aid, work_id = wid, state = 'assigned', agent_id = aid,
               accepted_at = NOW, via = via}
  if rec then
    emit_item(hdr, aid, data, rec)
  else
    emit(hdr, data)
  end
  record({ev = 'accept', agent = aid, queue = q, channel = ch, work = wid, via = via}, wid)
  if hooked('work.assigned') then
    hook('work.assigned', {work_id = wid, agent_id = aid, queue = q, channel = ch, via = via,
                           extension = redis.call('HGET', key('agent', aid), 'ext') or ''},
         data)
  end
  -- a case follows its item: the holder is its owner; the first accept is
  -- its first response and moves a new case to the working status
  local ck = key('case', wid)
  if redis.call('EXISTS', ck) == 1 then
    local c = redis.call('HMGET', ck, 'status', 'first_response')
    redis.call('HSET', ck, 'owner', aid, 'updated', NOW)
    if num(c[2]) == 0 then redis.call('HSET', ck, 'first_response', NOW) end
    local cfg = redis.call('HMGET', key('cases', 'config'), 'initial', 'working')
    if cfg[2] and c[1] == cfg[1] then case_set_status(wid, cfg[2], 'system') end
    case_updated(wid, aid)
  end
end

-- Release an item's capacity and close it (completed or abandoned).
-- Returns the agent's queues that gained room, the agent, queue, channel,
-- the state it was in, when it was accepted (0: never) and, when an agent
-- held it, the agent's fields after the release (`touch_agent`, for
-- emit_item; its `ver` already counts one event).
local function finish(wid, state, extra)
  local wk = key('work', wid)
  local it = redis.call('HMGET', wk, 'agent', 'channel', 'weight', 'queue', 'state', 'accepted_at')
  local aid, ch, w, q, prev = it[1], it[2], num(it[3]), it[4], it[5]
  local woke, rec = {}, nil
  if prev == 'queued' then
    redis.call('ZREM', key('queue', q, 'waiting'), wid)
    borrowed(wid, false)
  elseif aid and aid ~= '' then
    -- an offered item is in the agent's offers and the offer timer; one in
    -- hand is in its work, and in wrap-up also in the wrap-up timer
    if prev == 'offered' then
      redis.call('SREM', key('agent', aid, 'offers'), wid)
      redis.call('ZREM', key('timer', 'offers'), wid)
    else
      redis.call('SREM', key('agent', aid, 'work'), wid)
      if prev == 'wrapup' then redis.call('ZREM', key('timer', 'wrapups'), wid) end
    end
    rec = touch_agent(aid, ch, w, -1, prev ~= 'offered' and {idle = NOW} or nil)
    woke = reindex(aid, rec)
  end
  redis.call('ZREM', key('work', 'open'), wid)
  local fields = {'state', state, 'ended_at', NOW, 'expires', 0}
  for f, v in pairs(extra or {}) do
    fields[#fields + 1] = f
    fields[#fields + 1] = v
  end
  redis.call('HSET', wk, unpack(fields))
  if state == 'abandoned' and hooked('work.abandoned') then
    hook('work.abandoned', {work_id = wid, queue = q, channel = ch, agent_id = aid or '',
                            was = prev or '', reason = (extra or {}).reason or ''},
         redis.call('HGET', wk, 'data'))
  end
  return woke, aid, q, ch, prev, num(it[6]), rec
end

-- Complete an item in hand (by the agent, or when wrap-up runs out).
local function complete(wid, disposition, by)
  local woke, aid, q, ch, _, accepted, rec = finish(wid, 'completed', {disposition = disposition})
  if accepted > 0 then
    -- recent handle times feed the expected wait (store/lua/work_position.lua)
    redis.call('LPUSH', key('queue', q, 'handle'), NOW - accepted)
    redis.call('LTRIM', key('queue', q, 'handle'), 0, 49)
  end
  hook('work.completed', {work_id = wid, agent_id = aid or '', queue = q, channel = ch,
                          disposition = disposition, by = by})
  bump(key('stats'), 'completed', 1)
  emit_item({type = 'work.updated', to = aid, work_id = wid, state = 'completed',
             disposition = disposition}, aid, nil, rec)
  record({ev = 'complete', agent = aid, queue = q, channel = ch, work = wid,
          disposition = disposition, by = by}, wid)
  return woke
end

-- Why `aid` cannot be offered an item of channel `ch` and weight `w` now
-- (nil when it can): signed in, room left, under the channel's cap.
-- With `routable`, the agent must also be in a routable status.
local function unfit(aid, ch, w, routable)
  local a = redis.call('HMGET', key('agent', aid), 'conns', 'cap', 'load', 'c:' .. ch, 'routable', 'status')
  if not a[2] then return 'no agent ' .. aid end
  if num(a[1]) <= 0 then return 'agent ' .. aid .. ' is not signed in' end
  if routable and a[5] ~= '1' then
    return 'agent ' .. aid .. ' is not available (' .. tostring(a[6]) .. ')'
  end
  if num(a[2]) - num(a[3]) < w then
    return 'agent ' .. aid .. ' has ' .. (num(a[2]) - num(a[3])) .. ' units free, the item needs ' .. w
  end
  local cap = channel(ch)[2]
  if cap > 0 and num(a[4]) >= cap then
    return 'agent ' .. aid .. ' already holds ' .. num(a[4]) .. ' ' .. ch .. ' items (cap ' .. cap .. ')'
  end
  return nil
end

-- Offer item `wid` (channel `ch`, weight `w`, stored `data`) to `aid` with
-- the queue's push timeout (seconds, 0 = none): capacity held, timer set,
-- one `offer` event carrying the agent's new view. `extra` fields (handoff,
-- history) ride on the offer. The caller has taken the item out of any
-- waiting set.
local function make_offer(wid, aid, q, ch, w, data, timeout, extra, ev)
  local wk = key('work', wid)
  local rec = touch_agent(aid, ch, w, 1)
  local offers = redis.call('HINCRBY', wk, 'offers', 1)
  local expires = 0
  if timeout > 0 then
    expires = NOW + math.floor(timeout * 1000)
    redis.call('ZADD', key('timer', 'offers'), expires, wid)
  end
  redis.call('HSET', wk, 'state', 'offered', 'agent', aid, 'offered_at', NOW, 'expires', expires)
  redis.call('SADD', key('agent', aid, 'offers'), wid)
  local hdr = {type = 'offer', to = aid, work_id = wid, expires_at = expires, offered_at = NOW,
               attempt = offers}
  for f, v in pairs(extra or {}) do hdr[f] = v end
  emit_item(hdr, aid, data, rec)
  record({ev = ev or 'offer', agent = aid, queue = q, channel = ch, work = wid}, wid)
  reindex(aid, rec)
end

-- Offer an item that is in no waiting set and held by nobody to `aid`
-- (transfer, push, reassign, reopen to the last owner).
local function offer_to(wid, aid, q, extra, ev)
  local it = redis.call('HMGET', key('work', wid), 'channel', 'weight', 'data')
  local timeout = num(redis.call('HGET', key('queue', q), 'push_timeout'), 30)
  make_offer(wid, aid, q, it[1], num(it[2]), it[3], timeout, extra, ev)
end

-- Take an offered or in-hand item away from its agent without ending it;
-- the caller puts it somewhere (an offer, a queue). Returns the agent's
-- queues that gained room, the agent, and the state it was in.
local function release(wid, reason)
  local wk = key('work', wid)
  local it = redis.call('HMGET', wk, 'agent', 'channel', 'weight', 'state')
  local aid, ch, w, st = it[1], it[2], num(it[3]), it[4]
  local hdr
  if st == 'offered' then
    redis.call('SREM', key('agent', aid, 'offers'), wid)
    redis.call('ZREM', key('timer', 'offers'), wid)
    hdr = {type = 'offer.rescinded', to = aid, work_id = wid, reason = reason}
  else
    redis.call('SREM', key('agent', aid, 'work'), wid)
    redis.call('ZREM', key('timer', 'wrapups'), wid)
    hdr = {type = 'work.updated', to = aid, work_id = wid, state = reason}
  end
  local rec = touch_agent(aid, ch, w, -1, st ~= 'offered' and {idle = NOW} or nil)
  redis.call('HSET', wk, 'state', 'queued', 'agent', '', 'expires', 0)
  redis.call('HDEL', wk, 'offered_at', 'accepted_at', 'wrapup_at', 'missed_by')
  emit_item(hdr, aid, nil, rec)
  local woke = reindex(aid, rec)
  return woke, aid, st
end

-- Put a (released or re-opened) item in queue `q`'s waiting set.
local function enqueue(wid, q, since)
  local wk = key('work', wid)
  local it = redis.call('HMGET', wk, 'priority', 'created')
  local score = wait_score(num(it[1]), num(it[2], NOW))
  redis.call('HSET', wk, 'state', 'queued', 'agent', '', 'queue', q, 'score', score, 'expires', 0)
  redis.call('ZADD', key('queue', q, 'waiting'), score, wid)
  borrowed(wid, true, score)
  schedule_escalation(wid, q, since or num(it[2], NOW))
  if redis.call('EXISTS', key('case', wid)) == 1 then
    redis.call('HSET', key('case', wid), 'queue', q)
  end
end

-- A finished (completed or abandoned) item of a case routes again: same
-- item, same case, a new routing. It counts as created again, so the
-- checker's created = open + completed + abandoned still holds. The last
-- owner gets it first when it can take it now (in the queue's ready index,
-- room for it); otherwise it waits in its queue like new work.
local function reroute(wid, why)
  local wk = key('work', wid)
  local it = redis.call('HMGET', wk, 'queue', 'agent', 'channel', 'weight', 'req0')
  local q, last, ch, w = it[1], it[2], it[3], num(it[4])
  redis.call('HDEL', wk, 'offered_at', 'accepted_at', 'wrapup_at', 'ended_at', 'disposition',
             'reason', 'handoff', 'ovf', 'relax_step', 'missed_by', 'call_state')
  if it[5] then redis.call('HSET', wk, 'req', it[5]) end
  redis.call('DEL', key('work', wid, 'declined'))
  redis.call('HSET', wk, 'created', NOW, 'agent', '', 'state', 'queued')
  redis.call('ZADD', key('work', 'open'), NOW, wid)
  bump(key('stats'), 'created', 1)
  bump(key('stats'), 'reopened', 1)
  record({ev = 'reopen', queue = q, channel = ch, work = wid, reason = why, last = last or ''}, wid)
  if last and last ~= '' and redis.call('ZSCORE', key('queue', q, 'ready'), last)
     and not unfit(last, ch, w) then
    redis.call('HSET', wk, 'score', wait_score(num(redis.call('HGET', wk, 'priority')), NOW))
    -- declined or timed out, it waits like any item: its rules apply
    schedule_escalation(wid, q, NOW)
    offer_to(wid, last, q, {reopened = true, history = history_of(wid)}, 'offer')
    return nil
  end
  enqueue(wid, q, NOW)
  return q
end

-- The item `wid`, checked to be held by (or offered to) agent `aid` in one of
-- `states`; `expected` names those states in the error. Returns the item's
-- {state, agent, queue, channel}, or nil and the error reply.
local function mine(wid, aid, states, expected)
  local it = redis.call('HMGET', key('work', wid), 'state', 'agent', 'queue', 'channel')
  if not it[1] then
    return nil, {'not_found', 'work_id', 'no work item ' .. wid}
  end
  if it[2] ~= aid then
    return nil, {'not_yours', 'work_id', 'work item ' .. wid .. ' is not yours'}
  end
  if not states[it[1]] then
    return nil, {'conflict', 'work_id', 'work item ' .. wid .. ' is ' .. it[1] .. ', not ' .. expected}
  end
  return it
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

-- What an agent's snapshot needs from Redis, in the same call as the change
-- before it (conn_open.lua, agent_snapshot.lua): the agent's view, packed
-- ('' when it has no record), and the raw hashes of its open offers then of
-- its work in hand. The items' stored blobs ride along untouched; the
-- caller (Store._snapshot) decodes and filters them.
local function agent_snapshot(aid)
  local v = ''
  if redis.call('EXISTS', key('agent', aid)) == 1 then v = cmsgpack.pack(view(aid)) end
  local items = {}
  for _, set in ipairs({key('agent', aid, 'offers'), key('agent', aid, 'work')}) do
    for _, wid in ipairs(redis.call('SMEMBERS', set)) do
      local h = redis.call('HGETALL', key('work', wid))
      if #h > 0 then items[#items + 1] = h end
    end
  end
  return {v, items}
end

-- A new item, queued in `q` (work_create.lua, case_intake.lua).
local function create_item(wid, q, ch, prio, data, req, idem)
  local score = wait_score(prio, NOW)
  redis.call('HSET', key('work', wid), 'id', wid, 'queue', q, 'channel', ch, 'priority', prio,
             'weight', channel(ch)[1], 'score', score, 'state', 'queued', 'agent', '', 'created', NOW,
             'data', data, 'req', req, 'idem', idem, 'expires', 0)
  redis.call('ZADD', key('queue', q, 'waiting'), score, wid)
  redis.call('ZADD', key('work', 'open'), NOW, wid)
  bump(key('stats'), 'created', 1)
  record({ev = 'create', queue = q, channel = ch, work = wid, priority = prio}, wid)
  schedule_escalation(wid, q, NOW)
end

-- Start after-contact work on an item in hand: capacity stays held, and the
-- queue's wrap-up limit completes it (sweep.lua). Returns the deadline (0 = none).
local function start_wrapup(wid, aid, q)
  local limit = num(redis.call('HGET', key('queue', q), 'wrapup_seconds'), 120)
  local deadline = 0
  if limit > 0 then
    deadline = NOW + math.floor(limit * 1000)
    redis.call('ZADD', key('timer', 'wrapups'), deadline, wid)
  end
  redis.call('HSET', key('work', wid), 'state', 'wrapup', 'wrapup_at', NOW, 'expires', deadline)
  emit({type = 'work.updated', to = aid, work_id = wid, state = 'wrapup', wrapup_until = deadline})
  return deadline
end

-- The error reply for an item aimed at a queue or channel that does not
-- exist (checked before anything is stored), else nil.
local function unknown_target(q, ch)
  if not redis.call('ZSCORE', key('queues'), q) then
    return {'invalid', 'queue', 'unknown queue ' .. q}
  end
  if redis.call('HEXISTS', key('channels'), ch) == 0 then
    return {'invalid', 'channel', 'unknown channel ' .. ch}
  end
  return nil
end

-- Start a call: its arguments, and every per-call cache emptied (a cache
-- kept from an earlier call would answer with the center as it was then).
local function enter(keys, args)
  KEYS, ARGV = keys, args
  P = keys[1]
  NOW = tonumber(args[1])
  EVENTS = P .. 'events'
  pending_events, pending_bumps = nil, nil
  created_of, hooks_of = {}, nil
  strategy_cache, channel_cache = {}, {}
  VIEW_FIELDS, view_channels = {unpack(VIEW_BASE)}, nil
end
