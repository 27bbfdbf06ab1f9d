-- _lib_core.lua: the first part of the function library (store/scripts.py
-- joins the parts in the order of its LIBRARY list, and loads them with
-- every script as ONE Redis function library; each script is a function,
-- called with FCALL). This part owns the call's state and `enter`, key and
-- field helpers, and what every change reports: pub/sub events (`emit`),
-- counter increments (`bump`), the event stream, the item's history and the
-- Prometheus counters (`record`).
-- Relies on nothing. Every later part may use what it defines; a helper is
-- a local of the library, so a part sees only the parts before it.
--
-- Helpers are defined once per library load, not once per call. Each
-- function first calls `enter`, which sets the call's KEYS, ARGV, clock and
-- prefix and empties every per-call cache (each part registers its own
-- with `on_enter`): nothing may carry over from one call to the next except
-- constants. (Prepended to a script with a call of `enter(KEYS, ARGV)`, the
-- joined parts also run as an EVAL script: `script_source`.)
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
-- is only a last guard against a center whose roll-up never runs. It is
-- applied by sweep.lua (XTRIM, a few times a second), not by each XADD:
-- an XADD with MAXLEN cost four times one without, and is written to the
-- AOF with its exact length.
local LOG_MAX = 50000000

-- How each part empties its per-call caches; `enter` runs them all (a cache
-- kept from an earlier call would answer with the center as it was then).
local resets = {}
local function on_enter(reset)
  resets[#resets + 1] = reset
end

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

-- While a cluster moves the slot, Redis refuses a script's command where
-- the script reaches it, and what the script wrote before stays: half a
-- change. On the node marked MIGRATING, a command on a key it does not hold
-- (moved already, or one the script would create); on the node marked
-- IMPORTING, which runs a call sent there by ASK, a command on several keys
-- of which one is missing (`retain`'s EXISTS of an item's rare records, the
-- router's of a queue's `waiting` and `borrowed`, a DEL of several). So a
-- call first reads, in one EXISTS, a key that never
-- exists (keys.py `slot_probe`) with the anchor (KEYS[1]): on either node,
-- until the slot is stable again, Redis refuses that, before any write, and
-- the caller answers `unavailable`; a change is applied whole or refused
-- whole. On a single Redis there is no such window and no probe; which one
-- this is cannot change while the library is loaded (CLUSTER KEYSLOT is
-- refused without cluster support).
local clustered = nil

-- The calls of this batch (the batched variant of a script, store/scripts.py
-- `_MANY`): each one's ARGV, in order; nil in a call of one script.
local batch_calls = nil
local function batch_of(calls)
  batch_calls = calls
end

-- Start a call: its arguments, and every per-call cache emptied.
local function enter(keys, args)
  KEYS, ARGV = keys, args
  P = keys[1]
  NOW = tonumber(args[1])
  EVENTS = P .. 'events'
  if clustered == nil then clustered = pcall(redis.call, 'CLUSTER', 'KEYSLOT', P) end
  if clustered then redis.call('EXISTS', key('slot-probe'), P) end
  batch_calls = nil
  for i = 1, #resets do resets[i]() end
end

local function num(v, default)
  return tonumber(v) or default or 0
end

-- The fields `names` (a list) of hash `k`, by name, read with one HMGET. An
-- absent field reads false, as HMGET's nil does in Lua, so `r.f or x` and
-- `if r.f` mean what they meant on the positional reply.
--
-- Hot (a dozen per assignment, up to 20 fields): filling an empty table
-- field by field rehashed it at every power of two, which cost three times
-- the HMGET itself. Each list of names gets a constructor compiled once (a
-- table literal, sized at creation), kept by the list's text; the kept
-- constructors are forgotten past MAKERS_MAX lists (skill combinations).
local makers, n_makers, MAKERS_MAX = {}, 0, 512
local function maker(names)
  local sig = table.concat(names, '\0')
  local mk = makers[sig]
  if not mk then
    local parts = {}
    for i = 1, #names do parts[i] = string.format('[%q] = r[%d]', names[i], i) end
    mk = loadstring('return function(r) return {' .. table.concat(parts, ', ') .. '} end')()
    if n_makers >= MAKERS_MAX then makers, n_makers = {}, 0 end
    makers[sig], n_makers = mk, n_makers + 1
  end
  return mk
end
local function hmget(k, names)
  return maker(names)(redis.call('HMGET', k, unpack(names)))
end

-- Publish one event to every process. The message is a msgpack array of the
-- header map and, when given, the item's stored msgpack blob spliced in as is:
-- customer text is never decoded or re-encoded by Lua.
--
-- A script that makes many changes (route.lua, the batched variants of
-- store/scripts.py) collects its events between events_begin() and
-- events_publish() and publishes them as ONE message, a msgpack array of
-- such arrays: each process then reads one pub/sub message per call instead
-- of one per event.
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
    redis.call('SPUBLISH', EVENTS, msg)
  end
end
-- Counter increments (hash `metrics`) made between events_begin() and
-- events_publish() are summed per field and written once, at
-- events_publish: a route of 20 items makes one HMGET and one HSET of the
-- hash, not a hundred HINCRBYs, and appends one command to the append-only
-- file (the sums as absolute values, integers written in full so that an
-- HINCRBY still takes them). Like the events, they are lost only if the
-- script fails outright (a bug), which no caller may rely on.
local pending_bumps = nil
-- The item's history is kept in its record (hash `work:<id>`), not in a
-- list of its own: one field per event-stream entry, `h:<entry id>`, whose
-- value is that entry's history entries (msgpack maps, concatenated; two
-- for an intake and its assignment recorded as one stream entry). The
-- entry id orders them and is unique, so a call adds its entries without
-- reading what is there, and the item's own HSET of the call carries them
-- (`history_fields`): no command of their own on the hot path, and the
-- record's TTL is theirs. The entries are written short (`history_entry`
-- below: shorter names, and nothing the field's name or the entry before
-- it in the field already says). Readers: `item_history` in presence/store and
-- `history_of` here; they read the list `work:<id>:history` of items
-- written before first (older entries, never written to again).
-- Between events_begin() and events_publish() the fields wait per item
-- (`pending_history`, in order) for the item's next HSET of the call, or
-- for events_publish, which writes what is left with one HSET per item.
local pending_history, history_order = nil, nil
local function bump(k, field, n)
  -- (an increment of 0, the latency of an intake routed in its own call, changes nothing)
  if n == 0 then return end
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
  pending_history, history_order = {}, {}
end
-- The stream entry of a new item (`create`) that the same call may assign
-- at once: kept until the call's next record, which, when it is that
-- assignment, writes both as ONE entry (`create+accept`, presence/kpi/events.py
-- splits it again), else writes it first, as it was. Only the last entry
-- is ever held, so the stream's order is the calls' order. {ev, wid, entry}
local held = nil
-- The fields of an `accept` that a `create` has not (the rest of the two
-- are the same: ts, work, queue, channel): the `create+accept` entry takes
-- them from the accept, and the reader gives them back to it alone.
local ACCEPT_OWN = {'agent', 'via', 'paused'}
local function add_history(wid, id, value)
  if pending_history then
    local fields = pending_history[wid]
    if not fields then
      fields = {}
      pending_history[wid] = fields
      history_order[#history_order + 1] = wid
    end
    fields[#fields + 1] = 'h:' .. id
    fields[#fields + 1] = value
  else
    redis.call('HSET', key('work', wid), 'h:' .. id, value)
  end
end
-- The event stream's field names, short (every entry repeats them: ~50
-- bytes of AOF per assignment): `ev` and `ts` stay (two letters already,
-- and what a reader tells an entry by), the others one letter; a priority
-- of 0 (only a create has one) is left out. Readers:
-- presence/kpi/events.py (`stream_fields`: the KPI engine, its replay and
-- rollup, the demo's phone), which give the names back and read an entry
-- written before (long names) as it is. (No event has a field of one letter.)
-- (in a block: the helpers sent as one EVAL script may hold at most 200 locals)
local xadd
do
  local STREAM_SHORT = {work = 'w', agent = 'a', queue = 'q', channel = 'c', priority = 'p',
                        disposition = 'd', via = 'v', by = 'b'}
  xadd = function(ev)
    local args = {}
    for f, v in pairs(ev) do
      -- (a create's priority of 0, the default, is not written: the
      -- reader gives it back, as the item's record has it)
      if not (f == 'priority' and tonumber(v) == 0) then
        args[#args + 1] = STREAM_SHORT[f] or f
        args[#args + 1] = tostring(v)
      end
    end
    return redis.call('XADD', key('stream', 'events'), '*', unpack(args))
  end
end
-- An entry of an item's history, short (the item's record holds one per
-- event of its life, the largest part of its bytes): the names of
-- HISTORY_SHORT, no `work` when it is the item's (its key names it), `ts`
-- against the millisecond of the stream entry id that names its field
-- (`history_bytes`), and, in `after` (the accept of a `create+accept` field, whose `queue`,
-- `channel` and `ts` the merge found equal to the create's), none of those
-- three. An entry written so has `e` where one written before has `ev`: the
-- readers (`item_history` in presence/store, `history_of` below) give the
-- names back and fill the rest in, and take an entry with `ev` as it is.
-- (No event has a field of one letter, so a short name is never an event's own.)
local HISTORY_SHORT = {ev = 'e', agent = 'a', queue = 'q', channel = 'c', priority = 'p',
                       disposition = 'd', via = 'v', by = 'b'}
-- (written out: a library's load may not call `pairs`)
local HISTORY_LONG = {e = 'ev', a = 'agent', q = 'queue', c = 'channel', p = 'priority', d = 'disposition',
                      v = 'via', b = 'by'}
local function history_entry(ev, wid, after)
  local out = {}
  for f, v in pairs(ev) do
    if f == 'work' then
      if v ~= wid then out.work = v end
    elseif f ~= 'ts' and not (after and (f == 'queue' or f == 'channel')) then
      out[HISTORY_SHORT[f] or f] = v
    end
  end
  return out
end
-- Its bytes, once the stream entry `id` is known: `ts` as `t`, its
-- difference from the id's millisecond (the caller's clock against Redis's,
-- a millisecond or so: one byte), none when there is none.
local function history_bytes(entry, ts, id)
  local d = ts - tonumber(string.match(id, '^(%d+)'))
  if d ~= 0 then
    if d == math.floor(d) then entry.t = d else entry.ts = ts end
  end
  return cmsgpack.pack(entry)
end

local function flush_held()
  if held then
    local h = held
    held = nil
    local id = xadd(h.ev)
    add_history(h.wid, id, history_bytes(h.entry, h.ev.ts, id))
  end
end
local function flush_history(wid)
  if held and held.wid == wid then flush_held() end
  local fields = pending_history and pending_history[wid]
  if fields then
    pending_history[wid] = nil
    redis.call('HSET', key('work', wid), unpack(fields))
  end
end
-- Add item `wid`'s history fields waiting for it to `fields` (a list of
-- name, value about to be written to its record with HSET): that HSET
-- writes them.
local function history_fields(wid, fields)
  if held and held.wid == wid then flush_held() end
  local h = pending_history and pending_history[wid]
  if h then
    pending_history[wid] = nil
    for i = 1, #h do fields[#fields + 1] = h[i] end
  end
  return fields
end
local function events_publish()
  flush_held()
  for _, wid in ipairs(history_order) do flush_history(wid) end
  pending_history, history_order = nil, nil
  for k, h in pairs(pending_bumps) do
    local fields = {}
    for field, n in pairs(h) do
      if n ~= 0 then fields[#fields + 1] = field end
    end
    if #fields == 1 then
      redis.call('HINCRBY', k, fields[1], h[fields[1]])
    elseif #fields > 1 then
      local was, args = redis.call('HMGET', k, unpack(fields)), {}
      for i, field in ipairs(fields) do
        args[2 * i - 1] = field
        args[2 * i] = string.format('%d', (tonumber(was[i]) or 0) + h[field])
      end
      redis.call('HSET', k, unpack(args))
    end
  end
  pending_bumps = nil
  local n = #pending_events
  if n == 1 then
    redis.call('SPUBLISH', EVENTS, pending_events[1])
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
    redis.call('SPUBLISH', EVENTS, head .. table.concat(pending_events))
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
-- The items' lives, for the checker's created = open + completed +
-- abandoned: `stats|reopened`, in the same hash as the other counters (one
-- write per call); the arrivals (re-openings too) are the `created+|...`
-- counters and the ends the `completed+|...` and `abandoned+|...` ones
-- (`count`), and `stats|created`, `stats|completed`, `stats|abandoned`
-- those counted before. check.lua adds the older hash `stats`, which
-- centers counted in before and no call writes now.
local function count_item(name)
  bump(key('metrics'), 'stats|' .. name, 1)
end
-- An item's arrival (created, re-opened) and end (completed, abandoned) are
-- counted once, in a field that is both the Prometheus counter and the
-- checker's count (`<name>+|<queue>|<channel>`): a completion writes one
-- counter (an HINCRBY), not two, an intake one field fewer. counters.py adds
-- it to `<name>|<queue>|<channel>` and check.lua sums the fields with
-- `stats|<name>`, which count those of before, when both were written: each
-- is in exactly one of the two forms, whichever version counted it.
local ONCE = {complete = true, abandon = true, create = true, reopen = true}
local function count(ev, wid)
  local name = COUNTED[ev.ev]
  if not name then return end
  local mk = key('metrics')
  local q = ev.queue or ''
  bump(mk, name .. (ONCE[ev.ev] and '+|' or '|') .. q .. '|' .. (ev.channel or ''), 1)
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

on_enter(function()
  pending_events, pending_bumps = nil, nil
  pending_history, history_order, held = nil, nil, nil
  created_of = {}
end)

-- Append to the center's event stream (for reports) and, for an item, to
-- that item's own history, and count it. `ev` holds only strings and numbers.
local function record(ev, wid)
  count(ev, wid)
  ev.ts = NOW
  if held then
    local h = held
    if wid == h.wid and ev.ev == 'accept' and ev.queue == h.ev.queue and ev.channel == h.ev.channel
       and ev.work == h.ev.work then
      held = nil
      local both = h.ev
      both.ev = 'create+accept'
      for _, f in ipairs(ACCEPT_OWN) do both[f] = ev[f] end
      local id = xadd(both)
      add_history(wid, id, history_bytes(h.entry, NOW, id) .. cmsgpack.pack(history_entry(ev, wid, true)))
      return
    end
    flush_held()
  end
  -- (held only in a call that publishes at its end, which writes it then)
  if wid and ev.ev == 'create' and pending_history then
    held = {ev = ev, wid = wid, entry = history_entry(ev, wid)}
    return
  end
  local id = xadd(ev)
  if wid then add_history(wid, id, history_bytes(history_entry(ev, wid), ev.ts, id)) end
end

-- The item's history entries, decoded (for an offer after a handoff).
-- The latest HISTORY_OFFERED of them, oldest first: the list of an item
-- written before (older), then its `h:` fields by entry id.
local HISTORY_OFFERED = 200
local function entry_order(a, b)
  if a.ms ~= b.ms then return a.ms < b.ms end
  return a.seq < b.seq
end
local function history_of(wid)
  flush_history(wid)
  local out = {}
  for _, raw in ipairs(redis.call('LRANGE', key('work', wid, 'history'), -HISTORY_OFFERED, -1)) do
    out[#out + 1] = cmsgpack.unpack(raw)
  end
  local listed = #out
  local h, ids = redis.call('HGETALL', key('work', wid)), {}
  for i = 1, #h, 2 do
    local ms, seq = string.match(h[i], '^h:(%d+)-(%d+)$')
    if ms then ids[#ids + 1] = {ms = tonumber(ms), seq = tonumber(seq), v = h[i + 1]} end
  end
  table.sort(ids, entry_order)
  for _, e in ipairs(ids) do
    -- (cmsgpack.unpack returns every object of a concatenation)
    local first
    for i, one in ipairs({cmsgpack.unpack(e.v)}) do
      if one.e ~= nil and one.ev == nil then
        -- written short (`history_entry`): the names back, the rest filled in
        local full = {}
        for f, v in pairs(one) do full[HISTORY_LONG[f] or f] = v end
        if i > 1 and first then
          full.ts = full.ts or first.ts
          full.queue = full.queue or first.queue
          full.channel = full.channel or first.channel
        end
        full.ts = full.ts or e.ms + (full.t or 0)
        full.t = nil
        one = full
      end
      first = first or one
      out[#out + 1] = one
    end
  end
  if listed > 0 and #ids > 0 then
    -- both (an older server appended to the list of an item a newer one
    -- wrote): merged by ts, the list's first on a tie (item_history does the same)
    for i, e in ipairs(out) do e.__at = i end
    table.sort(out, function(a, b)
      local ta, tb = tonumber(a.ts) or 0, tonumber(b.ts) or 0
      if ta ~= tb then return ta < tb end
      return a.__at < b.__at
    end)
    for _, e in ipairs(out) do e.__at = nil end
  end
  local from = math.max(1, #out - HISTORY_OFFERED + 1)
  local last = {}
  for i = from, #out do
    local e = out[i]
    e.work = e.work or wid
    last[#last + 1] = e
  end
  return last
end
