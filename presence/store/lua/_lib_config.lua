-- _lib_config.lua: the center's settings as scripts read them: rules,
-- status definitions, channels (weight and per-agent cap), the webhooks'
-- subscriptions and each queue's routing settings.
-- Relies on _lib_core.lua: key, num, hmget, on_enter, P.
--
-- Channels, webhooks, rules and queue settings (business hours included)
-- change only when an operator changes them (or, for the hours, once an
-- hour), yet every assignment read them (two HGETALLs, two HKEYS, a few
-- HGETs). They are kept in the library's state between calls, one table
-- per center, and trusted while the center's `settings:version` key holds
-- the token they were read under: every writer of those keys deletes it in
-- the same step (Store.sync_center, cases.sync_config, `presence retain`,
-- queue_put.lua, queue_delete.lua, queue_plan.lua: `settings_changed`),
-- and so does a flush. A reader that finds it gone reads everything afresh and sets a
-- new token, unique to this server's Lua state (its clock and a counter),
-- so a token of before a flush or from another server never matches.
-- One GET per call that needs a setting, instead of the reads; none in a
-- remembered call, whose look-up of its reply reads the token (`recall`).

-- A status's definition {routable = bool, reasons = {...}}, nil when unknown.
local function status_def(status)
  local raw = redis.call('HGET', key('statuses'), status)
  if not raw then return nil end
  return cmsgpack.unpack(raw)
end

local kept = {}  -- center prefix -> its settings, as read under kept[P].token
local current  -- this call's center's settings (checked once per call)
local tokens = 0
-- the token as `recall` read it this call (read_token: whether it did); no
-- write to it comes between, since the one writer in a call is
-- `settings_changed`, which forgets it
local read_token, token_read = false, false
on_enter(function()
  current = nil
  read_token, token_read = false, false
end)

-- The string at `k` (false when absent), and the settings token with it in
-- the same MGET (the two keys share the center's hash tag): a remembered
-- call looks its reply up first (store/scripts.py) and reads the settings
-- next, so the token costs no command of its own.
local function recall(k)
  local got = redis.call('MGET', k, key('settings', 'version'))
  read_token, token_read = true, got[2]
  return got[1]
end

-- This call's center's settings: {token, channels = {name -> {weight, cap}}
-- (read whole, on first use), queues = {name -> settings read so far},
-- and what _lib_webhook.lua keeps}.
local function settings()
  if current then return current end
  local vk = key('settings', 'version')
  local token
  if read_token then
    token, read_token = token_read, false
  else
    token = redis.call('GET', vk)
  end
  local c = kept[P]
  if not token or not c or c.token ~= token then
    if not token then
      tokens = tokens + 1
      local t = redis.call('TIME')
      token = t[1] .. '.' .. t[2] .. '.' .. tokens
      if redis.pcall('SET', vk, token).err then
        -- refused: a read-only call (a `no-writes` function, or Redis
        -- full) reads the settings for itself alone; the next writer
        -- sets a token
        current = {token = false, queues = {}}
        return current
      end
    end
    c = {token = token, queues = {}}
    kept[P] = c
  end
  current = c
  return c
end

-- A writer of channels, webhooks or queue settings (in this call) makes
-- every kept copy stale, this call's included.
local function settings_changed()
  redis.call('DEL', key('settings', 'version'))
  kept[P], current, read_token = nil, nil, false
end

-- The center's channels: {name -> {weight, cap}} and their names in order.
local function channels()
  local c = settings()
  if not c.channels then
    local by, names = {}, {}
    local h = redis.call('HGETALL', key('channels'))
    for i = 1, #h, 2 do
      local t = cmsgpack.unpack(h[i + 1])
      by[h[i]] = {weight = num(t.weight, 10), cap = num(t.cap, 0)}
      names[#names + 1] = h[i]
    end
    table.sort(names)
    c.channels, c.channel_names = by, names
  end
  return c.channels, c.channel_names
end

-- A channel's {weight = units an item takes, cap = most items per agent (0: no cap)}.
local NO_CHANNEL = {weight = 10, cap = 0}
local function channel(ch)
  return channels()[ch] or NO_CHANNEL
end

-- A queue's settings the hot path reads: priority (false: no such queue),
-- strategy, push timeout, auto-accept, escalation delay, and its plan of
-- hours as stored (`plan_raw`, decoded by plan_of in _lib_queue.lua).
local function queue_conf(q)
  local qs = settings().queues
  local c = qs[q]
  if not c then
    local prio = redis.call('ZSCORE', key('queues'), q)
    local h = hmget(key('queue', q), {'strategy', 'push_timeout', 'auto_accept', 'escalate_at', 'plan'})
    c = {prio = prio and tonumber(prio) or false, strategy = h.strategy or 'most_available',
         timeout = num(h.push_timeout, 30), auto = h.auto_accept == '1',
         escalate_at = tonumber(h.escalate_at), plan_raw = h.plan}
    qs[q] = c
  end
  return c
end

-- A rule of the center (hash `rules`, written by Store.sync_center), or
-- `default` when it has none.
local function rule(name, default)
  local c = settings()
  local r = c.rules
  if not r then
    r = {}
    local h = redis.call('HGETALL', key('rules'))
    for i = 1, #h, 2 do r[h[i]] = h[i + 1] end
    c.rules = r
  end
  local v = r[name]
  if v == nil then return default end
  return v
end

local function strategy(q)
  return queue_conf(q).strategy
end
