-- _lib_config.lua: the center's settings as scripts read them: rules,
-- status definitions, channels (weight and per-agent cap) and each queue's
-- routing strategy, the last two read once per call.
-- Relies on _lib_core.lua: key, num, on_enter.

local function rule(name, default)
  return redis.call('HGET', key('rules'), name) or default
end

-- A status's definition {routable = bool, reasons = {...}}, nil when unknown.
local function status_def(status)
  local raw = redis.call('HGET', key('statuses'), status)
  if not raw then return nil end
  return cmsgpack.unpack(raw)
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

-- A channel's {weight = units an item takes, cap = most items per agent (0: no cap)}.
local channel_cache = {}
local function channel(ch)
  local c = channel_cache[ch]
  if not c then
    local raw = redis.call('HGET', key('channels'), ch)
    if raw then
      local t = cmsgpack.unpack(raw)
      c = {weight = num(t.weight, 10), cap = num(t.cap, 0)}
    else
      c = {weight = 10, cap = 0}
    end
    channel_cache[ch] = c
  end
  return c
end

on_enter(function()
  strategy_cache, channel_cache = {}, {}
end)
