-- _lib_agent.lua: an agent's record as the router sees it: its public view
-- and the events that carry it, its load (`touch_agent`), its place in each
-- queue's ready index (`reindex`), whether it can take an item now
-- (`unfit`), and its snapshot.
-- Relies on _lib_core.lua (key, num, hmget, emit, on_enter) and
-- _lib_config.lua (settings, channels, strategy, channel).

-- An agent's public view, sent to its own sockets and to supervisors.
-- It reads only the fields it shows (HMGET), not the whole agent hash with
-- its skills and queues: the per-channel counts are the `c:<channel>`
-- fields of the center's channels, listed once per call.
local VIEW_BASE = {'status', 'reason', 'name', 'since', 'load', 'ver', 'idle', 'cap', 'n', 'conns'}
local VIEW_FIELDS  -- VIEW_BASE and the center's channels' `c:<channel>` (this call's)
local VIEW_CF  -- the `c:<channel>` fields alone, in the order of the channels' names
local view_channels
-- The channel names and the view's fields, kept with the center's
-- settings (_lib_config.lua); never modified once built.
local function channels_of_view()
  if not view_channels then
    local c = settings()
    if not c.view_fields then
      local _, names = channels()
      local fields, cf = {unpack(VIEW_BASE)}, {}
      for i, ch in ipairs(names) do
        cf[i] = 'c:' .. ch
        fields[#fields + 1] = cf[i]
      end
      c.view_fields, c.view_cf = fields, cf
    end
    local _, names = channels()
    view_channels, VIEW_FIELDS, VIEW_CF = names, c.view_fields, c.view_cf
  end
  return view_channels
end

on_enter(function()
  VIEW_FIELDS, VIEW_CF, view_channels = nil, nil, nil
end)

-- `rec`: an agent's fields by name, as `touch_agent` returns them; without
-- it the fields are read.
local function view(aid, rec)
  local chans = channels_of_view()  -- sets VIEW_FIELDS
  local a = rec or hmget(key('agent', aid), VIEW_FIELDS)
  local by = {}
  for i = 1, #chans do
    local n = tonumber(a[VIEW_CF[i]])
    if n and n > 0 then by[chans[i]] = n end
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
local INDEX_FIELDS = {'routable', 'conns', 'cap', 'load', 'n', 'idle', 'queues'}
local function reindex(aid, rec)
  local a = rec or hmget(key('agent', aid), INDEX_FIELDS)
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

-- The fields `touch_agent` reads of an agent for an item of channel `ch`:
-- routable, queues, `c:<ch>`, missed, then VIEW_FIELDS; and where in that list the
-- capacity, the load and `c:<ch>` are ({cap, load, on}). Kept with the
-- settings like VIEW_FIELDS; never modified once built.
local function touch_fields(ch)
  channels_of_view()
  local conf = settings()
  conf.touch_names = conf.touch_names or {}
  conf.touch_slots = conf.touch_slots or {}
  local names = conf.touch_names[ch]
  if not names then
    names = {'routable', 'queues', 'c:' .. ch, 'missed', 'w'}
    for _, f in ipairs(VIEW_FIELDS) do names[#names + 1] = f end
    local at = {on = 3}
    for i, f in ipairs(names) do
      if f == 'cap' and not at.cap then at.cap = i end
      if f == 'load' and not at.load then at.load = i end
    end
    conf.touch_names[ch], conf.touch_slots[ch] = names, at
  end
  return names, conf.touch_slots[ch]
end

-- An agent's work in hand (items assigned or in wrap-up): field `w` of its
-- record, a msgpack array of the items' ids, so that the agent's own HSET
-- of the change (`touch_agent`) writes it: no command of its own when an
-- item is taken or ended. An agent written before has them in the set
-- `agent:<id>:work` (still read: `in_hand`); an item found only there
-- leaves it with an SREM. ('' or absent: none.)
local function held_of(raw)
  if raw and raw ~= '' then return cmsgpack.unpack(raw) end
  return {}
end
-- `raw`: field `w` as read; `wid` added (add) or taken out; returns the new
-- field, and whether `wid` was in it
local function held_with(raw, wid, add)
  local ids, out, found = held_of(raw), {}, false
  for _, id in ipairs(ids) do
    if id == wid then found = true end
    if id ~= wid then out[#out + 1] = id end
  end
  if add then out[#out + 1] = wid end
  if #out == 0 then return '', found end
  return cmsgpack.pack(out), found
end
-- Every item agent `aid` has in hand: its field `w` and its older set.
local function in_hand(aid, raw)
  if raw == nil then raw = redis.call('HGET', key('agent', aid), 'w') end
  local ids, seen = held_of(raw), {}
  for _, id in ipairs(ids) do seen[id] = true end
  for _, id in ipairs(redis.call('SMEMBERS', key('agent', aid, 'work'))) do
    if not seen[id] then ids[#ids + 1] = id end
  end
  return ids
end

-- Add (delta = 1) or release (delta = -1) an item's capacity on an agent,
-- with the `set` fields (name -> value) and one more `ver`, in one read and
-- one write of the agent's hash; returns the agent's fields after the
-- change, from which `view`, `emit_item` and `reindex` need read nothing
-- (pass it to both: its `ver` already counts the event). `a`: the agent's
-- `touch_fields(ch)` by name, when the caller just read them (the router's
-- pick), else read here. `hold`: an item taken in hand (delta 1) or out of
-- hand (-1) by this change (field `w`), nil for an offer.
local function touch_agent(aid, ch, weight, delta, set, a, hold)
  local ak = key('agent', aid)
  local cf = 'c:' .. ch
  a = a or hmget(ak, touch_fields(ch))
  a.load = num(a.load) + weight * delta
  a.n = num(a.n) + delta
  a[cf] = num(a[cf]) + delta
  a.ver = num(a.ver) + 1
  local out = {'load', a.load, 'n', a.n, cf, a[cf], 'ver', a.ver}
  if hold then
    local found
    a.w, found = held_with(a.w, hold, delta > 0)
    out[#out + 1] = 'w'
    out[#out + 1] = a.w
    if delta < 0 and not found then redis.call('SREM', key('agent', aid, 'work'), hold) end
  end
  for f, v in pairs(set or {}) do
    -- the count of offers missed in a row, reset on an assignment: most
    -- often 0 already, or absent (false), which counts as 0 (sweep.lua
    -- counts with HINCRBY); not read (nil): written
    if not (f == 'missed' and v == 0 and a.missed ~= nil and num(a.missed) == 0) then
      a[f] = v
      out[#out + 1] = f
      out[#out + 1] = v
    end
  end
  redis.call('HSET', ak, unpack(out))
  return a
end

-- Why `aid` cannot be offered an item of channel `ch` and weight `w` now
-- (nil when it can): signed in, room left, under the channel's cap.
-- With `routable`, the agent must also be in a routable status.
local function unfit(aid, ch, w, routable)
  local cf = 'c:' .. ch
  local a = hmget(key('agent', aid), {'conns', 'cap', 'load', cf, 'routable', 'status'})
  if not a.cap then return 'no agent ' .. aid end
  if num(a.conns) <= 0 then return 'agent ' .. aid .. ' is not signed in' end
  if routable and a.routable ~= '1' then
    return 'agent ' .. aid .. ' is not available (' .. tostring(a.status) .. ')'
  end
  if num(a.cap) - num(a.load) < w then
    return 'agent ' .. aid .. ' has ' .. (num(a.cap) - num(a.load)) .. ' units free, the item needs ' .. w
  end
  local cap = channel(ch).cap
  if cap > 0 and num(a[cf]) >= cap then
    return 'agent ' .. aid .. ' already holds ' .. num(a[cf]) .. ' ' .. ch .. ' items (cap ' .. cap .. ')'
  end
  return nil
end

-- What an agent's snapshot needs from Redis, in the same call as the change
-- before it (conn_open.lua, agent_snapshot.lua): two values, the agent's
-- view, packed ('' when it has no record), and the raw hashes of its open
-- offers then of its work in hand. The items' stored blobs ride along untouched; the
-- caller (Store._snapshot) decodes and filters them.
local function agent_snapshot(aid)
  local v = ''
  if redis.call('EXISTS', key('agent', aid)) == 1 then v = cmsgpack.pack(view(aid)) end
  local items = {}
  for _, ids in ipairs({redis.call('SMEMBERS', key('agent', aid, 'offers')), in_hand(aid)}) do
    for _, wid in ipairs(ids) do
      local all = redis.call('HGETALL', key('work', wid))
      if #all > 0 then
        -- but the item's history (`h:` fields, _lib_core.lua), which the
        -- snapshot does not show
        local h = {}
        for i = 1, #all, 2 do
          if string.sub(all[i], 1, 2) ~= 'h:' then
            h[#h + 1] = all[i]
            h[#h + 1] = all[i + 1]
          end
        end
        -- the item's id, which its record leaves out (create_item)
        h[#h + 1] = 'id'
        h[#h + 1] = wid
        items[#items + 1] = h
      end
    end
  end
  return v, items
end
